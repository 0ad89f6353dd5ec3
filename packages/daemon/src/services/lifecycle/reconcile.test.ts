import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CheckpointImage } from "../../runtime/checkpoint-image.js";
import type { ObservedState } from "../../runtime/driver.js";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import { backgroundRunning, busySandbox, incr, params, TestHost, type Daemon } from "./test-support/harness.js";

// A daemon restarted cleanly, after a host reboot, or after dying at any step of any transition: a new
// SandboxService over the same SQLite file and the same fake host reconciles in start().
let env: TestHost;
beforeEach(() => {
  env = new TestHost();
});
afterEach(() => {
  env.close();
  vi.useRealTimers();
});

const busy = (d: Daemon, runtime: "gvisor" | "crun" = "gvisor") => busySandbox(d.service, { runtime });
const hasProcess = (d: Daemon, id: string, pid: number) => backgroundRunning(d.service, id, pid);

describe("restart", () => {
  it("reattaches running and paused sandboxes and keeps hibernated ones, each with its memory", async () => {
    const d1 = await env.startDaemon();
    const running = await busy(d1);
    const paused = await busy(d1);
    const asleep = await busy(d1);
    const crun = await busy(d1, "crun");
    await d1.service.pause(paused.id);
    await d1.service.hibernate(asleep.id);
    const d2 = await env.restart(d1);
    expect(d2.service.get(running.id)).toMatchObject({ state: "running", stateReason: null });
    expect(d2.service.get(paused.id)).toMatchObject({ state: "paused", standbyReason: "requested" });
    expect(env.host.observe(paused.id)).toBe("paused");
    expect(d2.service.get(asleep.id).state).toBe("hibernated");
    for (const s of [running, paused, asleep, crun]) {
      expect(await incr(d2.service, s.id)).toBe(3);
      expect(await hasProcess(d2, s.id, s.pid)).toBe(true);
    }
  });

  it("after a host reboot, marks what was in RAM failed (its files kept until a delete) and wakes hibernated sandboxes onto remounted disks", async () => {
    const d1 = await env.startDaemon();
    const running = await busy(d1);
    const paused = await busy(d1);
    const asleep = await busy(d1);
    await d1.service.pause(paused.id);
    await d1.service.hibernate(asleep.id);
    env.reboot();
    const d2 = await env.startDaemon();
    for (const id of [running.id, paused.id]) {
      expect(d2.service.get(id)).toMatchObject({ state: "failed", stateReason: expect.stringMatching(/not running when the daemon restarted/) as unknown });
      expect(existsSync(d2.disks.paths(id).diskImage)).toBe(true);
    }
    expect(d2.service.get(asleep.id).state).toBe("hibernated");
    expect(await incr(d2.service, asleep.id)).toBe(3);
    expect(d2.faults.count("mount")).toBe(1);
    await d2.service.delete(running.id);
    expect(existsSync(d2.disks.paths(running.id).dir)).toBe(false);
  });

  it("finishes a delete the previous daemon did not: the record ends stopped", async () => {
    const d1 = await env.startDaemon();
    const { id } = await busy(d1);
    const crashed = d1.faults.crashAt("destroy", { id });
    d1.service.delete(id).catch(() => {});
    await crashed;
    const d2 = await env.restartAfterCrash(d1);
    expect(d2.service.get(id)).toMatchObject({ state: "stopped", stateReason: "stopped while the daemon restarted" });
    expect(env.host.has(id)).toBe(false);
    await d2.service.delete(id);
    expect(d2.store.get(id)).toBeNull();
  });
});

interface CrashCase {
  name: string;
  /** Where the daemon dies: a driver or disk step on the sandbox, before it or once it is done. */
  step: string;
  after?: boolean;
  /** Brings the sandbox to the state the transition starts from. */
  prepare?: (d: Daemon, id: string) => Promise<unknown>;
  /** The transition the daemon dies in. */
  act: (d: Daemon, id: string) => Promise<unknown>;
  /** What the state is before the restart (the record as the dead daemon left it). */
  left: SandboxRecord["state"];
  /** The reconciled state, and whether the sandbox is then in RAM. */
  state: SandboxRecord["state"];
  host: ObservedState;
  reason?: RegExp;
  /** Set when the current behaviour is the bug described: the test states the right outcome and fails today. */
  bug?: string;
  /** Extra set-up at the crash (e.g. what the dead daemon would have done next). */
  atCrash?: (d: Daemon, id: string) => void;
}

const crashes: CrashCase[] = [
  { name: "pause, before the freeze", step: "pause", act: (d, id) => d.service.pause(id), left: "running", state: "running", host: "running" },
  { name: "pause, frozen but not recorded", step: "pause", after: true, act: (d, id) => d.service.pause(id), left: "running", state: "running", host: "running" },
  { name: "thaw, before it", step: "resume", prepare: (d, id) => d.service.pause(id), act: (d, id) => d.service.resume(id), left: "paused", state: "paused", host: "paused" },
  {
    name: "thaw, thawed but not recorded",
    step: "resume",
    after: true,
    prepare: (d, id) => d.service.pause(id),
    act: (d, id) => d.service.resume(id),
    left: "paused",
    state: "running",
    host: "running",
    reason: /restarted while it was waking/,
  },
  { name: "hibernate, before the checkpoint", step: "checkpoint", act: (d, id) => d.service.hibernate(id), left: "hibernating", state: "running", host: "running", reason: /restarted while it was hibernating/ },
  {
    // A paused sandbox comes back running (its standby and lifetime pause are dropped), not paused.
    name: "hibernate of a paused sandbox, before the checkpoint",
    step: "checkpoint",
    prepare: (d, id) => d.service.pause(id),
    act: (d, id) => d.service.hibernate(id),
    left: "hibernating",
    state: "running",
    host: "running",
  },
  {
    name: "hibernate, checkpoint written (partial name) and runtime stopped",
    step: "checkpoint",
    after: true,
    act: (d, id) => d.service.hibernate(id),
    left: "hibernating",
    state: "hibernated",
    host: "stopped",
  },
  {
    name: "hibernate, at the disk sync after the checkpoint",
    step: "sync",
    act: (d, id) => d.service.hibernate(id),
    left: "hibernating",
    state: "hibernated",
    host: "stopped",
  },
  {
    name: "hibernate, image committed but the record not yet written",
    step: "sync",
    act: (d, id) => d.service.hibernate(id),
    // What the dead daemon would have done next: commit (a rename), then die before store.setStandby.
    atCrash: (d, id) => new CheckpointImage(d.disks.paths(id).checkpointDir).commit(),
    left: "hibernating",
    state: "hibernated",
    host: "stopped",
  },
  { name: "wake from disk, before the restore", step: "restore", prepare: (d, id) => d.service.hibernate(id), act: (d, id) => d.service.resume(id), left: "resuming", state: "hibernated", host: "stopped" },
  {
    name: "wake from disk, restored but not connected",
    step: "restore",
    after: true,
    prepare: (d, id) => d.service.hibernate(id),
    act: (d, id) => d.service.resume(id),
    left: "resuming",
    state: "running",
    host: "running",
    reason: /restarted while it was resuming/,
  },
  { name: "fork, copying the disks", step: "clone", act: (d, id) => d.service.fork(id, 2), left: "hibernated", state: "hibernated", host: "stopped" },
  // The source's filesystem is frozen for the copy: the restart thaws it, or every write would hang.
  { name: "fork, mid-copy with the source's filesystem frozen", step: "copy", act: (d, id) => d.service.fork(id, 2), left: "hibernated", state: "hibernated", host: "stopped" },
  { name: "fork, the source restored but not connected", step: "restore", after: true, act: (d, id) => d.service.fork(id, 2), left: "resuming", state: "running", host: "running" },
];

describe("crash at a transition, then restart", () => {
  for (const c of crashes) {
    // A case with `bug` states the right outcome; it fails today (it.fails) until the bug is fixed.
    (c.bug ? it.fails : it)(`${c.name}: ${c.state}${c.bug ? " (fails today: issue 14)" : ""}`, async () => {
      const d1 = await env.startDaemon();
      const { id, pid } = await busy(d1);
      await c.prepare?.(d1, id);
      const crashed = d1.faults.crashAt(c.step, { after: c.after, id });
      c.act(d1, id).catch(() => {});
      await crashed;
      c.atCrash?.(d1, id);
      expect(d1.store.get(id)?.state).toBe(c.left);
      const d2 = await env.restartAfterCrash(d1);
      expect([...env.mounts.frozen]).toEqual([]);
      const record = d2.store.get(id);
      expect(record?.state).toBe(c.state);
      if (c.reason) expect(record?.stateReason).toMatch(c.reason);
      expect(env.host.observe(id)).toBe(c.host);
      // Whatever it settled as, its memory and processes are there; the next request gets them.
      expect(await incr(d2.service, id)).toBe(3);
      expect(await hasProcess(d2, id, pid)).toBe(true);
      const clones = d2.store.list({ limit: 10 }).filter((r) => r.forkedFrom === id);
      for (const clone of clones) {
        // Never handed to the client (the fork did not answer): failed, runtime and disk removed.
        expect(clone).toMatchObject({ state: "failed", stateReason: "daemon stopped while the sandbox was creating" });
        expect(env.host.has(clone.id)).toBe(false);
        expect(existsSync(d2.disks.paths(clone.id).dir)).toBe(false);
      }
      expect(d2.store.live().filter((r) => r.id !== id && r.state !== "failed")).toEqual([]);
    });
  }

  it.each([
    { after: false, host: false },
    { after: true, host: true },
  ])("create, launch after=$after: the record (never handed out) is failed and its runtime and disk removed", async ({ after, host }) => {
    const d1 = await env.startDaemon();
    const crashed = d1.faults.crashAt("launch", { after });
    d1.service.create(params()).catch(() => {});
    await crashed;
    const [record] = d1.store.live();
    expect(record?.state).toBe("creating");
    expect(env.host.has(record!.id)).toBe(host);
    const d2 = await env.restartAfterCrash(d1);
    expect(d2.service.get(record!.id)).toMatchObject({ state: "failed", stateReason: "daemon stopped while the sandbox was creating" });
    expect(env.host.ids()).toEqual([]);
    expect(existsSync(d2.disks.paths(record!.id).dir)).toBe(false);
  });

});

describe("restart: nothing is given up that is alive or complete", () => {
  /**
   * `kill -9` of a daemon while the runtime still writes a busy sandbox's checkpoint, and a restart: the
   * sandbox is `hibernating`, its writer alive (it ends when `writer.stdin` is ended).
   */
  async function restartWhileCheckpointIsWritten() {
    const d1 = await env.startDaemon();
    const { id, pid } = await busy(d1);
    const crashed = d1.faults.crashAt("checkpoint", { id });
    d1.service.hibernate(id).catch(() => {});
    await crashed;
    // What the previous daemon's writer left: its pid beside a partial image it is still writing.
    const image = new CheckpointImage(d1.disks.paths(id).checkpointDir);
    image.beginWrite();
    const writer = spawn("sh", ["-c", "read line", image.writerPidPath], { stdio: ["pipe", "ignore", "ignore"] });
    writeFileSync(image.writerPidPath, String(writer.pid));
    const d2 = await env.restartAfterCrash(d1);
    expect(d2.store.get(id)?.state).toBe("hibernating");
    return { d2, id, pid, image, writer };
  }

  // The writer outlives the daemon. The restart does not wait for it; the sandbox settles once the writer
  // ends, from what it left.
  it.each([
    { whole: true, state: "hibernated", host: "stopped" },
    { whole: false, state: "running", host: "running" },
  ] as const)("a checkpoint still being written at the restart settles when it ends (whole: $whole): $state", async ({ whole, state, host }) => {
    const { d2, id, pid, image, writer } = await restartWhileCheckpointIsWritten();
    if (whole) {
      // The runtime finished the image and stopped the sandbox; then the writer ends.
      env.host.checkpointInto(id, image.partialPath);
      image.markPartialWhole();
    }
    writer.stdin.end("done\n");
    await vi.waitFor(() => expect(d2.store.get(id)?.state).toBe(state), { timeout: 3_000, interval: 20 });
    expect(env.host.observe(id)).toBe(host);
    expect(await incr(d2.service, id)).toBe(3);
    expect(await hasProcess(d2, id, pid)).toBe(true);
  });

  // A wake that comes while such a checkpoint settles waits on the sandbox's lock behind the settling. The
  // checkpointed container's removal must come before it, not after (it would take the woken sandbox).
  it("a wake queued while a checkpoint settles finds its sandbox whole, and it stays so", async () => {
    const { d2, id, pid, image, writer } = await restartWhileCheckpointIsWritten();
    const woke = d2.service.resume(id);
    env.host.checkpointInto(id, image.partialPath);
    image.markPartialWhole();
    writer.stdin.end("done\n");
    await woke;
    expect(d2.store.get(id)?.state).toBe("running");
    await new Promise((r) => setTimeout(r, 100));
    expect(env.host.observe(id)).toBe("running");
    expect(await incr(d2.service, id)).toBe(3);
    expect(await hasProcess(d2, id, pid)).toBe(true);
  });

  // An agent that does not answer a ping within 5 s (busy, or its pipe slow to reopen) is no reason to give
  // up a sandbox whose runtime is alive.
  it("a running sandbox whose agent does not answer at reattach is kept", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    const d1 = await env.startDaemon();
    const { id } = await busy(d1);
    env.host.agent(id).hung.add("ping");
    const starting = env.restart(d1);
    await vi.advanceTimersByTimeAsync(5_000);
    const d2 = await starting;
    expect(env.host.has(id)).toBe(true);
    expect(d2.service.get(id).state).not.toBe("failed");
  });

  // Nor when reopening the channel fails once (e.g. the FIFOs cannot be opened this time): it is retried.
  it("a running sandbox whose channel cannot be reopened at once is kept and reattached", async () => {
    const d1 = await env.startDaemon();
    const { id } = await busy(d1);
    d1.service.stop();
    const d2 = await env.startDaemon({ start: false });
    d2.driver.failNext("reattach", new Error("open fifo: EINTR"));
    await d2.service.start();
    expect(env.host.has(id)).toBe(true);
    expect(d2.service.get(id).state).not.toBe("failed");
    expect(await incr(d2.service, id)).toBe(3);
  });

  // A daemon started without a runtime (not configured this time) leaves that runtime's sandboxes alone.
  it("a hibernated sandbox whose runtime is not configured keeps its image", async () => {
    const d1 = await env.startDaemon();
    const { id } = await busy(d1);
    await d1.service.hibernate(id);
    const d2 = await env.restart(d1, { gvisor: false });
    expect(existsSync(d2.disks.paths(id).checkpointDir)).toBe(true);
    expect(d2.service.get(id).state).toBe("hibernated");
  });
});
