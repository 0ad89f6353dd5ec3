import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NotSupportedByRuntimeError } from "./errors.js";
import { Sandbox } from "./sandbox.js";
import { sandboxResource, sendJson, startFakeDaemon, type FakeDaemon } from "./test-support/fake-daemon.js";

const ID = "sbx_0123456789abcdef";
const CRUN = "sbx_cccccccccccccccc";
const FORKS = ["sbx_aaaaaaaaaaaaaaaa", "sbx_bbbbbbbbbbbbbbbb"];

describe("standby and fork", () => {
  let daemon: FakeDaemon;
  let sandbox: Sandbox;
  beforeAll(async () => {
    daemon = await startFakeDaemon((req, res) => {
      const [, , , id, action] = req.url.pathname.split("/");
      const body = req.body.length ? (JSON.parse(req.body.toString()) as Record<string, unknown>) : {};
      if (id === CRUN && action) return sendJson(res, 409, { error: { code: "not_supported_by_runtime", message: "crun cannot checkpoint", retryable: false } });
      if (action === "pause") return sendJson(res, 200, sandboxResource(id, { state: "paused", expiresAt: null, standbySince: "2025-01-01T00:01:00.000Z" }));
      if (action === "hibernate") return sendJson(res, 200, sandboxResource(id, { state: "hibernated", expiresAt: null, standbySince: "2025-01-01T00:01:00.000Z" }));
      if (action === "fork") {
        const sandboxes = FORKS.slice(0, body.count as number).map((fork) => sandboxResource(fork, { forkedFrom: id }));
        return sendJson(res, 201, { sandboxes });
      }
      if (action === "standby") return sendJson(res, 200, sandboxResource(id, body));
      sendJson(res, 200, sandboxResource(id));
    });
    sandbox = await Sandbox.connect(ID, { apiUrl: daemon.url, apiKey: "k" });
  });
  afterAll(() => daemon.close());

  it("reports no standby reason while awake, and `requested` after a pause", async () => {
    expect(sandbox.info).toMatchObject({ state: "running", standbySince: null, standbyReason: null });
    const info = await sandbox.pause();
    expect(info).toMatchObject({ state: "paused", standbyReason: "requested" });
    expect(daemon.requests.at(-1)!.url.pathname).toBe(`/v1/sandboxes/${ID}/pause`);
  });

  it("hibernates and keeps the returned resource as info", async () => {
    const info = await sandbox.hibernate();
    expect(info).toMatchObject({ id: ID, state: "hibernated", expiresAt: null, standbySince: "2025-01-01T00:01:00.000Z", standbyReason: "requested" });
    expect(sandbox.info).toBe(info);
    const req = daemon.requests.at(-1)!;
    expect(req.method).toBe("POST");
    expect(req.url.pathname).toBe(`/v1/sandboxes/${ID}/hibernate`);
  });

  it("forks into Sandbox objects on the same connection", async () => {
    const forks = await sandbox.fork(2);
    expect(JSON.parse(daemon.requests.at(-1)!.body.toString())).toEqual({ count: 2 });
    expect(forks.map((f) => f.id)).toEqual(FORKS);
    expect(forks[0]).toBeInstanceOf(Sandbox);
    expect(forks[0]!.info.forkedFrom).toBe(ID);
    await forks[1]!.refresh();
    const req = daemon.requests.at(-1)!;
    expect(req.url.pathname).toBe(`/v1/sandboxes/${FORKS[1]}`);
    expect(req.headers.authorization).toBe("Bearer k");
  });

  it("forks one sandbox by default", async () => {
    expect(await sandbox.fork()).toHaveLength(1);
    expect(JSON.parse(daemon.requests.at(-1)!.body.toString())).toEqual({ count: 1 });
  });

  it("sends only the standby fields given", async () => {
    const info = await sandbox.setStandbyPolicy({ idleTimeoutMs: 0, onTimeout: "kill" });
    expect(info).toMatchObject({ idleTimeoutMs: 0, onTimeout: "kill", hibernateAfterMs: 600000 });
    const req = daemon.requests.at(-1)!;
    expect(req.url.pathname).toBe(`/v1/sandboxes/${ID}/standby`);
    expect(JSON.parse(req.body.toString())).toEqual({ idleTimeoutMs: 0, onTimeout: "kill" });
  });

  it("throws NotSupportedByRuntimeError when the runtime cannot checkpoint", async () => {
    const crun = await Sandbox.connect(CRUN, { apiUrl: daemon.url });
    for (const call of [() => crun.hibernate(), () => crun.fork()]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotSupportedByRuntimeError);
      expect(err).toMatchObject({ code: "not_supported_by_runtime", status: 409, retryable: false });
    }
  });
});
