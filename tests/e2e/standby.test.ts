import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

const readCounter = async (s: Sandbox) => Number((await s.files.readText("/tmp/counter")).trim());

// The paused tier: frozen in RAM by the cgroup freezer, on every runtime.
describe.each(["gvisor", "crun"] as const)("pause and resume on %s", (runtime) => {
  let daemon: TestDaemon;
  let sandbox: Sandbox;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    sandbox = await Sandbox.create({ runtime, ...daemon.conn });
    await sandbox.files.write("/root/keep.txt", "kept");
    // Written aside and renamed: a read never sees the file truncated and still empty.
    await sandbox.commands.start("i=0; while true; do i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; sleep 0.05; done");
    await vi.waitFor(() => readCounter(sandbox), { timeout: 10_000, interval: 50 });
    await new Promise((r) => setTimeout(r, 300));
  });
  afterAll(async () => {
    await sandbox?.kill().catch(() => {});
    await daemon?.destroy();
  });

  it("freezes processes and stops the lifetime clock, then thaws them where they were", async () => {
    const paused = await sandbox.pause();
    expect(paused.state).toBe("paused");
    expect(paused.expiresAt).toBeNull();
    const frozen = (await Sandbox.connect(sandbox.id, daemon.conn)).info;
    expect(frozen.state).toBe("paused"); // GET does not wake it
    await new Promise((r) => setTimeout(r, 500));
    const resumed = await sandbox.resume();
    expect(resumed.state).toBe("running");
    expect(resumed.expiresAt).not.toBeNull();
    const atResume = await readCounter(sandbox);
    await new Promise((r) => setTimeout(r, 300));
    expect(await readCounter(sandbox)).toBeGreaterThan(atResume);
  });

  it("does not run while paused", async () => {
    const before = await readCounter(sandbox);
    await sandbox.pause();
    await new Promise((r) => setTimeout(r, 500));
    await sandbox.resume();
    // The loop ticks every 50 ms: at most a couple of ticks can land between the read, pause and resume.
    expect((await readCounter(sandbox)) - before).toBeLessThan(5);
  });

  it("wakes transparently for a command or a file read", async () => {
    await sandbox.pause();
    const r = await sandbox.commands.run("echo awake");
    expect(r.stdout).toBe("awake\n");
    expect((await sandbox.refresh()).state).toBe("running");
    await sandbox.pause();
    expect(await sandbox.files.readText("/root/keep.txt")).toBe("kept");
    expect((await sandbox.refresh()).state).toBe("running");
  });

  it("serves concurrent requests to a paused sandbox with one thaw", async () => {
    await sandbox.pause();
    const results = await Promise.all([1, 2, 3, 4].map((i) => sandbox.commands.run(`echo ${i}`)));
    expect(results.map((r) => r.stdout)).toEqual(["1\n", "2\n", "3\n", "4\n"]);
  });

  it("stays paused across a daemon restart and resumes afterwards", async () => {
    await sandbox.pause();
    await daemon.stop("SIGKILL");
    await daemon.restart();
    const again = await Sandbox.connect(sandbox.id, daemon.conn);
    expect(again.info.state).toBe("paused");
    expect((await again.commands.run("cat /root/keep.txt")).stdout).toBe("kept");
    sandbox = again;
  });

  it("a command in flight is frozen with a pause, and its request still ends at its deadline", async () => {
    const s = await Sandbox.connect(sandbox.id, daemon.conn);
    if (s.info.state !== "running") await s.resume();
    const started = Date.now();
    const result = s.commands.run("sleep 30", { timeoutMs: 1_000 });
    await new Promise((r) => setTimeout(r, 300));
    await s.pause();
    expect(await result).toMatchObject({ timedOut: true });
    // The deadline and the kill's grace (2 s), not the pause's length: the sandbox is still paused.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect((await s.refresh()).state).toBe("paused");
    await s.resume();
  });

  it("deletes a paused sandbox", async () => {
    const other = await Sandbox.create({ runtime, ...daemon.conn });
    await other.pause();
    await other.kill();
    await expect(Sandbox.connect(other.id, daemon.conn)).rejects.toMatchObject({ code: "sandbox_not_found" });
  });
});
