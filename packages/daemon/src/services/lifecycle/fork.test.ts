import { existsSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backgroundRunning, busySandbox, incr, params, run, TestHost, type Daemon } from "./test-support/harness.js";

let env: TestHost;
let d: Daemon;
beforeEach(async () => {
  env = new TestHost();
  d = await env.startDaemon();
});
afterEach(() => env.close());

/** A source with counter 2 and a background process (its pid returned). */
const source = () => busySandbox(d.service, { metadata: { role: "source" } });
const hasProcess = (id: string, pid: number) => backgroundRunning(d.service, id, pid);

describe("fork", () => {
  it("makes independent clones of memory and processes; the running source carries on", async () => {
    const src = await source();
    const clones = await d.service.fork(src.id, 2);
    expect(clones).toHaveLength(2);
    for (const c of clones) expect(c).toMatchObject({ state: "running", createdVia: "fork", forkedFrom: src.id, metadata: { role: "source" } });
    const [a, b] = clones.map((c) => c.id) as [string, string];
    expect(d.service.get(src.id)).toMatchObject({ state: "running", standbySince: null });
    expect(await incr(d.service, src.id)).toBe(3);
    expect(await incr(d.service, a)).toBe(3);
    expect(await incr(d.service, b)).toBe(3);
    expect(await incr(d.service, b)).toBe(4);
    expect([env.host.agent(src.id).counter, env.host.agent(a).counter, env.host.agent(b).counter]).toEqual([3, 3, 4]);
    for (const id of [src.id, a, b]) expect(await hasProcess(id, src.pid)).toBe(true);
    // The image taken for the fork is not kept once the source runs again.
    expect(existsSync(d.disks.paths(src.id).checkpointDir)).toBe(false);
    expect(existsSync(d.disks.paths(a).diskImage)).toBe(true);
  });

  it("puts a paused source back to sleep, and leaves a hibernated source hibernated", async () => {
    const paused = await source();
    await d.service.pause(paused.id);
    const [clone] = await d.service.fork(paused.id, 1);
    expect(d.service.get(paused.id)).toMatchObject({ state: "paused", standbyReason: "requested" });
    expect(env.host.observe(paused.id)).toBe("paused");
    expect(await incr(d.service, clone!.id)).toBe(3);

    const asleep = await source();
    await d.service.hibernate(asleep.id);
    const [clone2] = await d.service.fork(asleep.id, 1);
    expect(d.service.get(asleep.id).state).toBe("hibernated");
    expect(existsSync(d.disks.paths(asleep.id).checkpointDir)).toBe(true);
    expect(await incr(d.service, clone2!.id)).toBe(3);
    expect(await incr(d.service, asleep.id)).toBe(3);
  });

  it("cleans up after a clone fails to restore; the source survives", async () => {
    const src = await source();
    d.driver.failNext("restore", new Error("runsc restore: no memory"), (id) => id !== src.id);
    await expect(d.service.fork(src.id, 2)).rejects.toMatchObject({ code: "sandbox_failed", message: expect.stringMatching(/no memory/) as unknown });
    expect(d.store.live().map((r) => r.id)).toEqual([src.id]);
    expect(env.host.ids()).toEqual([src.id]);
    expect(d.service.get(src.id).state).toBe("running");
    expect(await incr(d.service, src.id)).toBe(3);
    expect(await hasProcess(src.id, src.pid)).toBe(true);
  });

  it("cleans up after the disk copy fails; the source comes back", async () => {
    const src = await source();
    d.faults.failNext("clone", new Error("cp: no space left on device"));
    await expect(d.service.fork(src.id, 2)).rejects.toThrow(/no space/);
    expect(d.store.live().map((r) => r.id)).toEqual([src.id]);
    expect(d.service.get(src.id).state).toBe("running");
    expect(await incr(d.service, src.id)).toBe(3);
  });

  it("when the source itself does not come back, the clones stand and the source stays hibernated", async () => {
    const src = await source();
    d.driver.failNext("restore", new Error("runsc restore: busy"), src.id);
    const clones = await d.service.fork(src.id, 1);
    expect(clones[0]).toMatchObject({ state: "running" });
    expect(d.service.get(src.id)).toMatchObject({ state: "hibernated", stateReason: expect.stringMatching(/the last wake failed/) as unknown });
    expect(await incr(d.service, src.id)).toBe(3);
  });

  it("refuses a fork beyond capacity and one of a sandbox that is not awake or asleep", async () => {
    const limited = await env.startDaemon({ config: { maxSandboxes: 2 } });
    const { id } = await limited.service.create(params());
    await expect(limited.service.fork(id, 2)).rejects.toMatchObject({ code: "capacity_exceeded" });
    expect(limited.service.get(id).state).toBe("running");
    expect((await run(limited.service, id, "true")).code).toBe(0);
    await expect(limited.service.fork("sbx_missing", 1)).rejects.toMatchObject({ code: "sandbox_not_found" });
  });
});
