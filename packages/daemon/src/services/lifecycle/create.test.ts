import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiError } from "../../errors/api-error.js";
import { incr, params, run, TestHost } from "./test-support/harness.js";

let env: TestHost;
beforeEach(() => {
  env = new TestHost();
});
afterEach(() => env.close());

describe("create", () => {
  it("boots a sandbox cold: running, its agent answers, its memory is its own", async () => {
    const d = await env.startDaemon();
    const sbx = await d.service.create(params({ metadata: { owner: "t" } }));
    expect(sbx).toMatchObject({ state: "running", createdVia: "cold", template: "base", runtime: "gvisor", metadata: { owner: "t" } });
    expect(env.host.observe(sbx.id)).toBe("running");
    expect(await run(d.service, sbx.id, "echo 'hello there' && exit 3")).toEqual({ code: 3, output: "hello there\n" });
    expect(await incr(d.service, sbx.id)).toBe(1);
    expect(await incr(d.service, sbx.id)).toBe(2);
    expect(env.host.agent(sbx.id).counter).toBe(2);
    expect(d.faults.count("launch")).toBe(1);
    expect(await env.mounts.has(sbx.id)).toBe(true);
  });

  it("removes a sandbox whose client went away before the create answered, and keeps one whose client stayed", async () => {
    const d = await env.startDaemon();
    const gone = new AbortController();
    const creating = d.service.create(params(), { abandoned: gone.signal });
    gone.abort();
    const err = await creating.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).message).toMatch(/closed the connection/);
    expect(d.service.list({ limit: 100 }).sandboxes).toEqual([]);
    const stayed = await d.service.create(params(), { abandoned: new AbortController().signal });
    expect(d.service.list({ limit: 100 }).sandboxes.map((x) => x.id)).toEqual([stayed.id]);
  });

  it("runs the template's start command and waits for its readiness check", async () => {
    env.templates.define("app", { start: "incr && sleep infinity", ready: "count" });
    const d = await env.startDaemon();
    const sbx = await d.service.create(params({ template: "app" }));
    expect(sbx).toMatchObject({ state: "running", template: "app:1", createdVia: "cold" });
    const live = await d.service.acquire(sbx.id);
    const { processes } = await live.agent.ps();
    expect(processes.find((p) => p.tag === "start")).toMatchObject({ running: true, cmd: ["/bin/sh", "-c", "incr && sleep infinity"] });
    expect(env.host.agent(sbx.id).counter).toBe(1);
  });

  it("fails a create whose start command exits, and removes its record, runtime and disk", async () => {
    env.templates.define("broken", { start: "echo starting; exit 3", ready: "false" });
    const d = await env.startDaemon();
    const err = await d.service.create(params({ template: "broken" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).message).toMatch(/start command .* exited with code 3/);
    expect(d.service.list({ limit: 10 }).sandboxes).toEqual([]);
    expect(env.host.ids()).toEqual([]);
  });

  it("lists newest first, filters by state and metadata, and pages with a cursor", async () => {
    const d = await env.startDaemon();
    const a = await d.service.create(params({ metadata: { team: "a" } }));
    await new Promise((r) => setTimeout(r, 2));
    const b = await d.service.create(params({ metadata: { team: "b" } }));
    await d.service.pause(b.id);
    expect(d.service.get(a.id).id).toBe(a.id);
    expect(() => d.service.get("sbx_nope")).toThrow(/no sandbox/);
    expect(d.service.list({ limit: 10 }).sandboxes.map((s) => s.id)).toEqual([b.id, a.id]);
    expect(d.service.list({ limit: 10, state: "paused" }).sandboxes.map((s) => s.id)).toEqual([b.id]);
    expect(d.service.list({ limit: 10, metadata: "team=a" }).sandboxes.map((s) => s.id)).toEqual([a.id]);
    const first = d.service.list({ limit: 1 });
    expect(first.sandboxes.map((s) => s.id)).toEqual([b.id]);
    expect(d.service.list({ limit: 1, cursor: first.nextCursor ?? "" }).sandboxes.map((s) => s.id)).toEqual([a.id]);
    expect(d.service.info()).toEqual({ total: 2, running: 1, max: d.config.maxSandboxes });
  });

  it("refuses creates beyond capacity; hibernated sandboxes do not count", async () => {
    const d = await env.startDaemon({ config: { maxSandboxes: 2 } });
    const a = await d.service.create(params());
    await d.service.create(params());
    await expect(d.service.create(params())).rejects.toMatchObject({ code: "capacity_exceeded", status: 429 });
    await d.service.hibernate(a.id);
    await expect(d.service.create(params())).resolves.toMatchObject({ state: "running" });
  });

  it("removes the record when the runtime fails to launch", async () => {
    const d = await env.startDaemon();
    d.driver.failNext("launch", new Error("runsc: boom"));
    await expect(d.service.create(params())).rejects.toMatchObject({ code: "sandbox_failed", message: expect.stringMatching(/runsc: boom/) as unknown });
    expect(d.store.live()).toEqual([]);
    expect(env.host.ids()).toEqual([]);
  });

  it("removes the record, and launches nothing, when its disk cannot be made", async () => {
    const d = await env.startDaemon();
    d.disks.faults.failNext("create", new Error("mkfs: no space"));
    await expect(d.service.create(params())).rejects.toMatchObject({ code: "sandbox_failed", message: expect.stringMatching(/mkfs: no space/) as unknown });
    expect(d.store.live()).toEqual([]);
    expect(env.host.ids()).toEqual([]);
    expect(d.driver.faults.count("launch")).toBe(0);
  });

  it("removes the record when the agent dies before saying hello", async () => {
    const d = await env.startDaemon();
    env.host.nextAgent({ exitBeforeHello: true });
    await expect(d.service.create(params())).rejects.toMatchObject({ code: "sandbox_failed", message: expect.stringMatching(/exited during start/) as unknown });
    expect(d.store.live()).toEqual([]);
  });

  it("refuses a runtime that is not usable, and a template that does not exist", async () => {
    const d = await env.startDaemon({ available: false });
    await expect(d.service.create(params())).rejects.toMatchObject({ code: "runtime_unavailable" });
    await expect(d.service.create(params({ runtime: "crun", template: "nope" }))).rejects.toMatchObject({ code: "template_not_found" });
    await expect(d.service.create(params({ runtime: "crun" }))).resolves.toMatchObject({ runtime: "crun", state: "running" });
  });

  it("creates from a template snapshot: the start command's memory is restored, not re-run", async () => {
    env.templates.define("snap", { start: "incr && sleep infinity", ready: "count" });
    const d = await env.startDaemon();
    const taken = await d.service.snapshotTemplate("snap:1", new AbortController().signal);
    expect(taken.runtime).toBe("fake 1 agent unpinned");
    env.templates.define("snap", { start: "incr && sleep infinity", ready: "count", snapshot: true });
    const sbx = await d.service.create(params({ template: "snap" }));
    expect(sbx).toMatchObject({ state: "running", createdVia: "snapshot" });
    // The snapshot's counter (1, from its start command) came along; the start command did not run again.
    expect(await incr(d.service, sbx.id)).toBe(2);
    expect(d.faults.count("launch")).toBe(1);
    expect(d.store.live().map((r) => r.id)).toEqual([sbx.id]);
  });
});
