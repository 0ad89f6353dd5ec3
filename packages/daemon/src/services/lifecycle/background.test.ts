import { existsSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { incr, params, TestHost } from "./test-support/harness.js";

// What happens without a request: the sweeper (each second) pauses idle sandboxes, hibernates long-paused
// ones, ends lifetimes and refills warm pools. Fake timers drive it: Date and the sweeper's interval move
// only when a test advances them; streams (process.nextTick) stay real.
let env: TestHost;
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
  env = new TestHost();
});
afterEach(() => {
  env.close();
  vi.useRealTimers();
});

/** Moves fake time on 10 ms at a time (letting real I/O run in between) until `check` passes; 5 s at most. */
async function waitFor(check: () => void): Promise<void> {
  for (let waited = 0; ; waited += 10) {
    try {
      return check();
    } catch (err) {
      if (waited >= 5_000) throw err;
    }
    await new Promise((r) => setImmediate(r));
    await vi.advanceTimersByTimeAsync(10);
  }
}

describe("standby sweeper", () => {
  it("pauses a sandbox idle for idleTimeoutMs, not one held busy", async () => {
    const d = await env.startDaemon();
    const { id } = await d.service.create(params({ idleTimeoutMs: 5_000 }));
    const held = (await d.service.create(params({ idleTimeoutMs: 5_000 }))).id;
    const release = d.service.hold(held);
    await vi.advanceTimersByTimeAsync(4_000);
    expect(d.service.get(id).state).toBe("running");
    await vi.advanceTimersByTimeAsync(1_000);
    await waitFor(() => expect(d.service.get(id)).toMatchObject({ state: "paused", standbyReason: "idle", stateReason: "idle for 5 s" }));
    expect(env.host.observe(id)).toBe("paused");
    await vi.advanceTimersByTimeAsync(20_000);
    expect(d.service.get(held).state).toBe("running");
    release();
    // Idle counts from the release, which falls between two sweeps: the sixth sweep after it pauses.
    await vi.advanceTimersByTimeAsync(6_000);
    await waitFor(() => expect(d.service.get(held).state).toBe("paused"));
  });

  it("retries an automatic pause that failed on the next sweep", async () => {
    const d = await env.startDaemon();
    const { id } = await d.service.create(params({ idleTimeoutMs: 1_000 }));
    d.driver.failNext("pause");
    await vi.advanceTimersByTimeAsync(1_000);
    await waitFor(() => expect(d.faults.count("pause")).toBe(1));
    expect(d.service.get(id).state).toBe("running");
    await vi.advanceTimersByTimeAsync(1_000);
    await waitFor(() => expect(d.service.get(id).state).toBe("paused"));
  });

  it("hibernates a sandbox paused for hibernateAfterMs, keeping why it slept; it wakes with its memory", async () => {
    const d = await env.startDaemon();
    const { id } = await d.service.create(params({ idleTimeoutMs: 1_000, hibernateAfterMs: 3_000 }));
    await incr(d.service, id);
    await vi.advanceTimersByTimeAsync(1_000);
    await waitFor(() => expect(d.service.get(id).state).toBe("paused"));
    await vi.advanceTimersByTimeAsync(3_000);
    await waitFor(() => expect(d.service.get(id)).toMatchObject({ state: "hibernated", standbyReason: "idle", stateReason: "paused for 3 s" }));
    expect(env.host.has(id)).toBe(false);
    expect(await incr(d.service, id)).toBe(2);
  });

  it("at the end of its lifetime, puts an onTimeout=standby sandbox to sleep; standby does not count", async () => {
    const d = await env.startDaemon();
    const { id } = await d.service.create(params({ timeoutMs: 5_000, idleTimeoutMs: 0, hibernateAfterMs: 0 }));
    await vi.advanceTimersByTimeAsync(2_000);
    await d.service.pause(id);
    await vi.advanceTimersByTimeAsync(10_000);
    // Woken with the 3 s it had left.
    await d.service.resume(id);
    expect(Date.parse(d.service.get(id).expiresAt ?? "")).toBe(Date.now() + 3_000);
    await vi.advanceTimersByTimeAsync(3_000);
    await waitFor(() => expect(d.service.get(id)).toMatchObject({ state: "paused", standbyReason: "lifetime", stateReason: "lifetime of 5000 ms reached" }));
    // Put to sleep by its lifetime, it wakes with a fresh one.
    expect(await incr(d.service, id)).toBe(1);
    expect(Date.parse(d.service.get(id).expiresAt ?? "")).toBe(Date.now() + 5_000);
  });

  it("at the end of its lifetime, stops an onTimeout=kill sandbox and removes its runtime and disk", async () => {
    const d = await env.startDaemon();
    const { id } = await d.service.create(params({ timeoutMs: 2_000, onTimeout: "kill", idleTimeoutMs: 0 }));
    await vi.advanceTimersByTimeAsync(2_000);
    await waitFor(() => expect(d.service.get(id)).toMatchObject({ state: "stopped", stateReason: "lifetime of 2000 ms reached" }));
    expect(env.host.has(id)).toBe(false);
    expect(existsSync(d.disks.paths(id).dir)).toBe(false);
  });
});

describe("warm pools and shutdown", () => {
  it("keeps a frozen member per configured pool; a create claims it", async () => {
    const d = await env.startDaemon({ config: { warmPools: { base: 1 } } });
    await vi.advanceTimersByTimeAsync(1_000);
    await waitFor(() => expect(d.service.warmPools()).toEqual([{ template: "base", size: 1, ready: 1, booting: 0 }]));
    const [member] = d.store.pooled();
    expect(member).toMatchObject({ state: "paused", pooled: true, expiresAt: null });
    expect(env.host.observe(member!.id)).toBe("paused");
    // Hidden from lists and from capacity until claimed.
    expect(d.service.list({ limit: 10 }).sandboxes).toEqual([]);
    const sbx = await d.service.create(params({ metadata: { via: "pool" }, env: { A: "1" } }));
    expect(sbx).toMatchObject({ id: member!.id, state: "running", createdVia: "warm_pool", metadata: { via: "pool" }, env: { A: "1" } });
    expect(d.faults.count("launch")).toBe(1);
    expect(await incr(d.service, sbx.id)).toBe(1);
    expect(d.service.list({ limit: 10 }).sandboxes.map((s) => s.id)).toEqual([sbx.id]);
    // A shape the pool does not hand out boots cold.
    expect(await d.service.create(params({ memoryMiB: 128 }))).toMatchObject({ createdVia: "cold" });
    // The next sweep refills the pool.
    await vi.advanceTimersByTimeAsync(1_000);
    await waitFor(() => expect(d.service.warmPools()[0]).toMatchObject({ ready: 1 }));
    expect(d.store.pooled()[0]!.id).not.toBe(sbx.id);
  });

  it("a member restored from a snapshot runs the template's readiness check once before it is frozen", async () => {
    // The check pages the restored server back in (the code interpreter's first run after a claim).
    env.templates.define("snap", { start: "incr && sleep infinity", ready: "incr" });
    const d = await env.startDaemon({ config: { warmPools: { "snap:1": 1 } } });
    const taking = d.service.snapshotTemplate("snap:1", new AbortController().signal);
    let taken = false;
    void taking.then(() => (taken = true));
    await waitFor(() => expect(taken).toBe(true));
    env.templates.define("snap", { start: "incr && sleep infinity", ready: "incr", snapshot: true });
    await vi.advanceTimersByTimeAsync(1_000);
    await waitFor(() => expect(d.service.warmPools()[0]).toMatchObject({ ready: 1 }));
    const [member] = d.store.pooled();
    expect(member).toMatchObject({ createdVia: "snapshot", state: "paused" });
    // 1 from the start command and 2 from the readiness check, in the snapshot; 3 from the member's own check.
    expect(env.host.agent(member!.id).counter).toBe(3);
  });

  it("a graceful shutdown hibernates every checkpointable sandbox and discards pool members", async () => {
    const d = await env.startDaemon({ config: { warmPools: { base: 1 } } });
    await vi.advanceTimersByTimeAsync(1_000);
    await waitFor(() => expect(d.service.warmPools()[0]).toMatchObject({ ready: 1 }));
    const member = d.store.pooled()[0]!.id;
    const running = (await d.service.create(params({ memoryMiB: 128 }))).id;
    const paused = (await d.service.create(params({ memoryMiB: 128 }))).id;
    const crun = (await d.service.create(params({ runtime: "crun" }))).id;
    await incr(d.service, running);
    await d.service.pause(paused);
    await d.service.shutdown();
    expect(d.service.get(running)).toMatchObject({ state: "hibernated", standbyReason: "requested" });
    expect(d.service.get(paused).state).toBe("hibernated");
    expect(d.service.get(crun).state).toBe("running");
    expect(d.store.get(member)).toBeNull();
    expect(env.host.ids()).toEqual([crun]);
    // The next daemon finds them as they were left.
    const next = await env.startDaemon();
    expect(next.service.get(crun).state).toBe("running");
    expect(await incr(next.service, running)).toBe(2);
    expect(await incr(next.service, crun)).toBe(1);
  });
});
