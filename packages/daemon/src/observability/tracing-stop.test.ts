import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { expect, it } from "vitest";
import { startTracing } from "./tracing-setup.js";
import { traced } from "./tracing.js";

it("a stop does not wait on a collector that never answers", async () => {
  const exporter = new InMemorySpanExporter();
  const hung = new SimpleSpanProcessor(exporter);
  hung.shutdown = () => new Promise(() => {});
  const tracing = await startTracing({}, hung, 20);
  await traced("before the stop", {}, async () => {});
  expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(["before the stop"]);
  await expect(tracing.shutdown()).resolves.toBeUndefined();
});
