import { describe, expect, it } from "vitest";
import type { Sandbox } from "@stasis/protocol";
import type { SandboxService, SandboxUsage } from "../services/sandbox-service.js";
import { E2bMetricsHistory } from "./metrics-history.js";

const createdAt = Date.parse("2026-01-01T00:00:00Z");

/** A sandbox service holding one running sandbox whose CPU counter the test moves. */
function oneSandbox(): { service: SandboxService; usage: SandboxUsage } {
  const sandbox = { id: "sbx_metrics00000000", state: "running", createdAt: new Date(createdAt).toISOString() } as Sandbox;
  const usage: SandboxUsage = { cpuCount: 2, cpuUsageUsec: 0, memoryBytes: 64 << 20, memoryLimitBytes: 512 << 20, diskUsedBytes: 1 << 20, diskTotalBytes: 1 << 30, networkSentBytes: null, networkReceivedBytes: null };
  const service = { list: () => ({ sandboxes: [sandbox], nextCursor: null }), usage: () => ({ ...usage }) } as unknown as SandboxService;
  return { service, usage };
}

describe("E2bMetricsHistory", () => {
  it("reports the CPU used between two samples, over all the sandbox's cores", () => {
    const { service, usage } = oneSandbox();
    const history = new E2bMetricsHistory(service);
    // First sample: 10 s of CPU over the first 10 s of life on 2 cores.
    usage.cpuUsageUsec = 10e6;
    history.sampleAll(createdAt + 10_000);
    // Then 2.5 s of CPU in 5 s on 2 cores: 25 %, not the lifetime average.
    usage.cpuUsageUsec = 12.5e6;
    history.sampleAll(createdAt + 15_000);
    // A restore resets the counter: the lifetime average again, never a negative figure.
    usage.cpuUsageUsec = 1e6;
    history.sampleAll(createdAt + 20_000);
    const samples = history.window("sbx_metrics00000000");
    expect(samples.map((s) => s.cpuUsedPct)).toEqual([50, 25, 2.5]);
    expect(samples[0]).toMatchObject({ cpuCount: 2, memUsed: 64 << 20, memTotal: 512 << 20, diskUsed: 1 << 20, diskTotal: 1 << 30 });
  });
});
