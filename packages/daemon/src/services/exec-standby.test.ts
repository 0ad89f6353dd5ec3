import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CommandRequestSchema } from "@stasis/protocol";
import { ExecService } from "./exec-service.js";
import { busySandbox, TestHost, type Daemon } from "./lifecycle/test-support/harness.js";

// A command in flight when its sandbox is put into standby: it finishes before a hibernation, or is
// frozen with a pause and resumed with it; either way its deadline holds.
let env: TestHost;
let d: Daemon;
let exec: ExecService;
beforeEach(async () => {
  env = new TestHost();
  d = await env.startDaemon();
  exec = new ExecService(d.service, d.metrics, 1024 * 1024);
});
afterEach(() => env.close());

const command = (cmd: string, timeoutMs?: number) => CommandRequestSchema.parse({ cmd, ...(timeoutMs === undefined ? {} : { timeoutMs }) });

describe("a command in flight during standby", () => {
  it("a pause freezes it and its request still ends at its deadline, as timed out", async () => {
    const { id } = await busySandbox(d.service);
    const started = Date.now();
    const result = exec.run(id, command("sleep 30", 300));
    await new Promise((r) => setTimeout(r, 50));
    await d.service.pause(id);
    const r = await result;
    expect(r).toMatchObject({ timedOut: true, signal: "SIGKILL" });
    // The deadline (300 ms) plus the kill's grace, not the pause's length (still paused now).
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(d.service.get(id).state).toBe("paused");
  });

  it("a pause freezes it; after the resume it finishes with its output", async () => {
    const { id } = await busySandbox(d.service);
    const result = exec.run(id, command("sleep 0.3; echo done", 10_000));
    await new Promise((r) => setTimeout(r, 50));
    await d.service.pause(id);
    await new Promise((r) => setTimeout(r, 500));
    await d.service.resume(id);
    expect(await result).toMatchObject({ exitCode: 0, stdout: "done\n", timedOut: false });
  });

  it("a hibernation lets it finish first: the command succeeds, then the sandbox hibernates", async () => {
    const { id } = await busySandbox(d.service);
    const result = exec.run(id, command("sleep 0.3; echo done", 10_000));
    await new Promise((r) => setTimeout(r, 50));
    await d.service.hibernate(id);
    expect(await result).toMatchObject({ exitCode: 0, stdout: "done\n", timedOut: false });
    expect(d.service.get(id).state).toBe("hibernated");
  });
});
