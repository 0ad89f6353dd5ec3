import { existsSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AgentConnection } from "../../agent-client/agent-connection.js";
import { CheckpointImage } from "../../runtime/checkpoint-image.js";
import { backgroundRunning, busySandbox, incr, params, run, TestHost, type Daemon } from "./test-support/harness.js";

let env: TestHost;
let d: Daemon;
beforeEach(async () => {
  env = new TestHost();
  d = await env.startDaemon();
});
afterEach(() => env.close());


const busy = (runtime: "gvisor" | "crun" = "gvisor") => busySandbox(d.service, { runtime });
const stillRunning = (id: string, pid: number) => backgroundRunning(d.service, id, pid);

describe("pause", () => {
  it("freezes in RAM: requests wait until it is resumed; memory and processes are kept", async () => {
    const { id, pid } = await busy();
    const live = await d.service.acquire(id);
    const paused = await d.service.pause(id);
    expect(paused).toMatchObject({ state: "paused", standbyReason: "requested", expiresAt: null });
    expect(env.host.observe(id)).toBe("paused");
    let answered = false;
    const ping = live.agent.ping().then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(answered).toBe(false);
    expect(await d.service.resume(id)).toMatchObject({ state: "running", standbySince: null });
    await ping;
    expect(await incr(d.service, id)).toBe(3);
    expect(await stillRunning(id, pid)).toBe(true);
  });

  it("a failed pause leaves the sandbox running", async () => {
    const { id } = await busy();
    d.driver.failNext("pause", new Error("freezer: EBUSY"));
    await expect(d.service.pause(id)).rejects.toMatchObject({ code: "agent_timeout", message: expect.stringMatching(/could not be paused, it keeps running: freezer: EBUSY/) });
    expect(d.service.get(id).state).toBe("running");
    expect(await incr(d.service, id)).toBe(3);
  });

  it("a failed thaw leaves it paused, and the next wake works", async () => {
    const { id } = await busy();
    await d.service.pause(id);
    d.driver.failNext("resume", new Error("freezer: EIO"));
    await expect(d.service.resume(id)).rejects.toThrow(/EIO/);
    expect(d.service.get(id).state).toBe("paused");
    expect(env.host.observe(id)).toBe("paused");
    expect(await incr(d.service, id)).toBe(3);
  });
});

describe("hibernate and wake", () => {
  it("checkpoints to disk and wakes with memory and processes", async () => {
    const { id, pid } = await busy();
    const image = d.disks.paths(id).checkpointDir;
    expect(await d.service.hibernate(id)).toMatchObject({ state: "hibernated", standbyReason: "requested" });
    expect(env.host.has(id)).toBe(false);
    expect(existsSync(image)).toBe(true);
    expect(d.service.usage(id).memoryBytes).toBe(0);
    // Any request wakes it.
    expect(await incr(d.service, id)).toBe(3);
    expect(d.service.get(id)).toMatchObject({ state: "running", standbySince: null, stateReason: null });
    expect(await stillRunning(id, pid)).toBe(true);
    expect(existsSync(image)).toBe(false);
  });

  it("hibernates a paused sandbox, keeping why it slept", async () => {
    const { id } = await busy();
    await d.service.pause(id);
    expect(await d.service.hibernate(id)).toMatchObject({ state: "hibernated", standbyReason: "requested" });
    expect(await d.service.resume(id)).toMatchObject({ state: "running" });
    expect(await incr(d.service, id)).toBe(3);
  });

  it("notes in the image whether the agent had read all it was sent; a wake from an image without the note resyncs in full", async () => {
    const { id, pid } = await busy();
    const image = () => new CheckpointImage(d.disks.paths(id).checkpointDir);
    const resync = vi.spyOn(AgentConnection.prototype, "resync");
    await d.service.hibernate(id);
    expect(image().channelInStep()).toBe(true);
    expect(await incr(d.service, id)).toBe(3);
    expect(resync).not.toHaveBeenCalled();
    // Paused: a frozen agent answers no ping, so a quiet channel is what counts.
    await d.service.pause(id);
    await d.service.hibernate(id);
    expect(image().channelInStep()).toBe(true);
    await d.service.resume(id);
    // An agent that does not confirm in time is checkpointed anyway, and its wake resyncs the channel.
    env.host.agent(id).hung.add("ping");
    await d.service.hibernate(id);
    expect(image().channelInStep()).toBe(false);
    expect(await incr(d.service, id)).toBe(4);
    expect(resync).toHaveBeenCalledTimes(1);
    expect(await stillRunning(id, pid)).toBe(true);
    resync.mockRestore();
  });

  it("concurrent requests share one wake, from either tier", async () => {
    const { id } = await busy();
    await d.service.hibernate(id);
    const counters = await Promise.all(Array.from({ length: 5 }, () => incr(d.service, id)));
    expect(counters.sort()).toEqual([3, 4, 5, 6, 7]);
    expect(d.faults.count("restore")).toBe(1);
    await d.service.pause(id);
    await Promise.all([incr(d.service, id), incr(d.service, id), d.service.resume(id), d.service.acquire(id)]);
    expect(d.faults.count("resume")).toBe(1);
    expect(env.host.agent(id).counter).toBe(9);
  });

  it("a pause and a request that race run in arrival order on the sandbox's lock", async () => {
    const { id } = await busy();
    // The pause came first: the request then wakes the sandbox.
    const [, value] = await Promise.all([d.service.pause(id), incr(d.service, id)]);
    expect(value).toBe(3);
    expect(d.service.get(id).state).toBe("running");
    // The request came first: it is served, then the sandbox pauses.
    const [value2, paused] = await Promise.all([incr(d.service, id), d.service.pause(id)]);
    expect(value2).toBe(4);
    expect(paused.state).toBe("paused");
    expect(env.host.observe(id)).toBe("paused");
  });

  it("a failed checkpoint leaves a running sandbox running, with the reason", async () => {
    const { id, pid } = await busy();
    d.driver.failNext("checkpoint", new Error("runsc checkpoint: out of disk"));
    await expect(d.service.hibernate(id)).rejects.toMatchObject({ code: "sandbox_failed", message: expect.stringMatching(/still running/) as unknown });
    expect(d.service.get(id)).toMatchObject({ state: "running", stateReason: expect.stringMatching(/hibernation failed: .*out of disk/) as unknown });
    expect(await incr(d.service, id)).toBe(3);
    expect(await stillRunning(id, pid)).toBe(true);
    expect(existsSync(`${d.disks.paths(id).checkpointDir}.partial`)).toBe(false);
  });

  it("a failed checkpoint leaves a paused sandbox paused", async () => {
    const { id } = await busy();
    await d.service.pause(id);
    d.driver.failNext("checkpoint");
    await expect(d.service.hibernate(id)).rejects.toThrow(/still paused/);
    expect(d.service.get(id)).toMatchObject({ state: "paused", standbyReason: "requested" });
    expect(env.host.observe(id)).toBe("paused");
    expect(await incr(d.service, id)).toBe(3);
  });

  // "Cannot tell" (observe throws) is not "dead": the runtime and agent channel are still up.
  it("a failed checkpoint whose host state cannot be read keeps the live sandbox", async () => {
    const { id } = await busy();
    d.driver.failNext("checkpoint");
    d.driver.failNext("observe", new Error("cgroup unreadable"));
    await expect(d.service.hibernate(id)).rejects.toThrow();
    expect(d.service.get(id).state).toBe("running");
  });

  it("a failed restore keeps the sandbox hibernated with the reason; the next request wakes it", async () => {
    const { id } = await busy();
    await d.service.hibernate(id);
    d.driver.failNext("restore", new Error("runsc restore: image version mismatch"));
    await expect(d.service.resume(id)).rejects.toMatchObject({ code: "sandbox_failed" });
    expect(d.service.get(id)).toMatchObject({ state: "hibernated", stateReason: expect.stringMatching(/the last wake failed: .*image version mismatch/) as unknown });
    expect(existsSync(d.disks.paths(id).checkpointDir)).toBe(true);
    expect(await incr(d.service, id)).toBe(3);
  });

  it("retries a restore once when the restored agent dies, and gives up after the second", async () => {
    const { id } = await busy();
    await d.service.hibernate(id);
    env.host.nextAgent({ exitBeforeHello: true }, id);
    expect(await d.service.resume(id)).toMatchObject({ state: "running" });
    expect(d.faults.count("restore")).toBe(2);
    await d.service.hibernate(id);
    env.host.nextAgent({ exitBeforeHello: true }, id);
    env.host.nextAgent({ exitBeforeHello: true }, id);
    await expect(d.service.resume(id)).rejects.toThrow(/exited during wake/);
    expect(d.service.get(id).state).toBe("hibernated");
    expect(env.host.has(id)).toBe(false);
    expect(await incr(d.service, id)).toBe(3);
  });

  it("a runtime without checkpoint refuses hibernate with 409 but pauses and resumes", async () => {
    const { id } = await busy("crun");
    await expect(d.service.hibernate(id)).rejects.toMatchObject({ code: "not_supported_by_runtime", status: 409 });
    await expect(d.service.fork(id, 1)).rejects.toMatchObject({ code: "not_supported_by_runtime", status: 409 });
    expect(d.service.get(id).state).toBe("running");
    await d.service.pause(id);
    expect(await incr(d.service, id)).toBe(3);
  });
});

describe("delete and death", () => {
  it("deletes from every state, removing runtime and disk", async () => {
    const ids = await Promise.all([0, 1, 2].map(async () => (await d.service.create(params())).id));
    await d.service.pause(ids[1]!);
    await d.service.hibernate(ids[2]!);
    for (const id of ids) await d.service.delete(id);
    expect(d.store.live()).toEqual([]);
    expect(env.host.ids()).toEqual([]);
    for (const id of ids) expect(existsSync(d.disks.paths(id).dir)).toBe(false);
  });

  it("a delete whose runtime kill fails leaves the record stopping; a retry removes it", async () => {
    const { id } = await busy();
    d.driver.failNext("destroy", new Error("runsc kill: timeout"));
    await expect(d.service.delete(id)).rejects.toThrow(/timeout/);
    expect(d.service.get(id).state).toBe("stopping");
    await d.service.delete(id);
    expect(() => d.service.get(id)).toThrow(/no sandbox/);
    expect(env.host.has(id)).toBe(false);
  });

  it("a sandbox that dies is marked failed with the likely cause; its runtime goes, its files stay until a delete", async () => {
    const { id } = await busy();
    expect((await run(d.service, id, "oom", 100)).code).toBeNull();
    await vi.waitFor(() => expect(d.service.get(id).stateReason).toMatch(/memory limit of 64 MiB/), { timeout: 2_000, interval: 5 });
    expect(d.service.get(id).state).toBe("failed");
    expect(env.host.has(id)).toBe(false);
    expect(existsSync(d.disks.paths(id).diskImage)).toBe(true);
    await d.service.delete(id);
    expect(existsSync(d.disks.paths(id).dir)).toBe(false);
  });
});
