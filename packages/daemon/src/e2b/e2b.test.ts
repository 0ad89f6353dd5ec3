import { SandboxMetricsHistorySchema } from "@stasis/protocol";
import { DomainStore } from "../store/domain-store.js";
import { PtyService } from "../services/pty-service.js";
import { WatchService } from "../services/watch-service.js";
import { PreviewService } from "../services/preview-service.js";
import { CodeService } from "../services/code/code-service.js";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../config/config.js";
import { createApp } from "../http/app.js";
import { Metrics } from "../observability/metrics.js";
import { ExecService } from "../services/exec-service.js";
import { FileService } from "../services/file-service.js";
import { SandboxService } from "../services/sandbox-service.js";
import { createTemplateService } from "../services/template-service.js";
import { SandboxFilesystem } from "../disks/sandbox-filesystem.js";
import { Database } from "../store/database.js";
import { SandboxStore, type SandboxRecord } from "../store/sandbox-store.js";
import { testRecord } from "../store/test-records.js";
import { TemplateStore } from "../templates/template-store.js";
import { E2bAuth } from "./e2b-auth.js";
import { SecretsKey } from "../secrets/secret-crypto.js";
import { SecretStore } from "../secrets/secret-store.js";
import { E2bStore } from "./e2b-store.js";
import { resolvePath } from "./envd.js";
import { E2bMetricsHistory, SAMPLES_KEPT } from "./metrics-history.js";

// The E2B surface in-process, over records in a real store (no runtime): routing, auth, the translation
// of states, and every refusal. The published SDK against real sandboxes is in tests/e2e/e2b-compat.
const dir = mkdtempSync(join(tmpdir(), "stasis-e2b-"));
const API_KEY = "k-0123456789abcdef";
const config = loadConfig({ STASIS_DATA_DIR: dir, STASIS_API_KEY: API_KEY });
const database = new Database(join(dir, "db.sqlite"));
const store = new SandboxStore(database);
const e2bStore = new E2bStore(database);
const metrics = new Metrics();
const log = pino({ level: "silent" });
const templates = new TemplateStore(join(dir, "templates"));
const sandboxes = new SandboxService({ config, store, drivers: new Map(), filesystem: new SandboxFilesystem(join(dir, "sandboxes")), templates, metrics, log });
const auth = new E2bAuth(API_KEY, e2bStore);
// Never started: the tests take each sample themselves, at the instants they choose.
const history = new E2bMetricsHistory(sandboxes);
const exec = new ExecService(sandboxes, metrics, 1024);
const preview = new PreviewService(sandboxes, exec, { domain: "localhost", urlTemplate: () => "http://{port}-{id}.localhost:7070" }, new DomainStore(database));
const app = createApp({
  apiKey: API_KEY,
  log,
  metrics,
  services: { pty: new PtyService(sandboxes, exec), watch: new WatchService(sandboxes), sandboxes, exec, code: new CodeService(sandboxes, preview), preview, files: new FileService(sandboxes, 1024), templates, templateBuilds: createTemplateService({ config, store: templates, sandboxes, steps: undefined, log }), e2bKeys: e2bStore, secrets: new SecretStore(database, new SecretsKey(config.secretsKeyFile)), metrics, metricsHistory: history, doctor: async () => [], version: "test", defaultRuntime: "gvisor" },
  e2b: { auth, metricsHistory: history },
});
afterAll(() => {
  database.close();
  rmSync(dir, { recursive: true, force: true });
});

const key = e2bStore.createKey("test").key;
const api = { "x-api-key": key, "content-type": "application/json" };

function record(id: string, extra: Partial<SandboxRecord> = {}): SandboxRecord {
  return testRecord(id, { onTimeout: "kill", ...extra });
}

const running = "sbx_e2b0running000a";
const idle = "sbx_e2b0idle000000b";
const paused = "sbx_e2b0paused0000c";
const lifetime = "sbx_e2b0lifetime00d";
const stopped = "sbx_e2b0stopped000e";
const runningSince = Date.now() - 5000;
store.insert(record(running, { metadata: { team: "ml" }, createdAt: runningSince, expiresAt: runningSince + 300_000 }));
store.insert(record(idle, { state: "hibernated", standbySince: Date.now() - 1000, standbyReason: "idle", createdAt: Date.now() - 4000 }));
const pausedSince = Date.now() - 3000;
store.insert(record(paused, { state: "paused", standbySince: Date.now() - 1000, standbyReason: "requested", metadata: { team: "ml" }, createdAt: pausedSince }));
store.insert(record(lifetime, { state: "paused", standbySince: Date.now(), standbyReason: "lifetime", onTimeout: "standby", createdAt: Date.now() - 2000 }));
store.insert(record(stopped, { state: "stopped", stateReason: "lifetime reached", createdAt: Date.now() - 1000 }));

const envd = (id: string, path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
  app.request(path, { ...init, headers: { "e2b-sandbox-id": id, "e2b-sandbox-port": "49983", "x-access-token": auth.envdToken(id), ...init.headers } });

describe("E2B control plane", () => {
  it("takes issued keys and the daemon's own key, and refuses others", async () => {
    expect((await app.request(`/sandboxes/${running}`, { headers: api })).status).toBe(200);
    expect((await app.request(`/sandboxes/${running}`, { headers: { "x-api-key": API_KEY } })).status).toBe(200);
    const refused = await app.request(`/sandboxes/${running}`, { headers: { "x-api-key": `e2b_${"0".repeat(40)}` } });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ code: 401, message: expect.stringMatching(/stasis e2b key create/) });
    expect(e2bStore.listKeys()[0]?.lastUsedAt).not.toBeNull();
  });

  it("describes a sandbox as E2B does, with the envd token that opens it", async () => {
    const info = (await (await app.request(`/sandboxes/${running}`, { headers: api })).json()) as Record<string, unknown>;
    expect(info).toMatchObject({ sandboxID: running, templateID: "base", state: "running", cpuCount: 1, memoryMB: 512, diskSizeMB: 1024, metadata: { team: "ml" }, envdVersion: "0.5.7", lifecycle: { onTimeout: "kill", autoResume: false } });
    expect(info.envdAccessToken).toBe(auth.envdToken(running));
    expect(Date.parse(info.endAt as string) - Date.parse(info.startedAt as string)).toBe(300_000);
  });

  it("shows idle standby as running and a requested or lifetime pause as paused; stopped sandboxes are gone", async () => {
    const state = async (id: string) => ((await (await app.request(`/sandboxes/${id}`, { headers: api })).json()) as { state: string }).state;
    expect(await state(idle)).toBe("running");
    expect(await state(paused)).toBe("paused");
    expect(await state(lifetime)).toBe("paused");
    const gone = await app.request(`/sandboxes/${stopped}`, { headers: api });
    expect(gone.status).toBe(404);
    expect(await gone.json()).toMatchObject({ code: 404 });
  });

  it("lists by state and metadata, and pages with X-Next-Token", async () => {
    const ids = async (query: string) => {
      const res = await app.request(`/v2/sandboxes${query}`, { headers: api });
      expect(res.status).toBe(200);
      return { ids: ((await res.json()) as { sandboxID: string }[]).map((s) => s.sandboxID), next: res.headers.get("x-next-token") };
    };
    expect((await ids("")).ids).toEqual([lifetime, paused, idle, running]);
    expect((await ids("?state=paused")).ids).toEqual([lifetime, paused]);
    expect((await ids("?state=running")).ids).toEqual([idle, running]);
    expect((await ids(`?metadata=${encodeURIComponent("team=ml")}`)).ids).toEqual([paused, running]);
    const first = await ids("?limit=3");
    expect(first.ids).toEqual([lifetime, paused, idle]);
    expect(first.next).toBeTruthy();
    const second = await ids(`?limit=3&nextToken=${first.next}`);
    expect(second).toEqual({ ids: [running], next: null });
    // A full last page has no next page (E2B's SDK would fetch an empty one and say hasNext until then).
    expect(await ids("?limit=4")).toEqual({ ids: [lifetime, paused, idle, running], next: null });
    const half = await ids("?limit=2");
    expect(half.next).toBeTruthy();
    expect(await ids(`?limit=2&nextToken=${half.next}`)).toEqual({ ids: [idle, running], next: null });
    expect(await ids(`?state=paused&limit=2`)).toEqual({ ids: [lifetime, paused], next: null });
    const v1 = (await (await app.request("/sandboxes", { headers: api })).json()) as { sandboxID: string }[];
    expect(v1.map((s) => s.sandboxID)).toEqual([idle, running]);
    expect((await app.request("/v2/sandboxes?state=dead", { headers: api })).status).toBe(400);
  });

  it("lists sandboxes started at or after startedAfter, the instant itself included", async () => {
    const since = (at: number) => app.request(`/v2/sandboxes?startedAfter=${encodeURIComponent(new Date(at).toISOString())}`, { headers: api });
    const ids = async (at: number) => ((await (await since(at)).json()) as { sandboxID: string }[]).map((s) => s.sandboxID);
    expect(await ids(pausedSince)).toEqual([lifetime, paused]);
    expect(await ids(pausedSince + 1)).toEqual([lifetime]);
  });

  it("answers metrics from a bounded history: only the samples inside start..end", async () => {
    const t0 = Math.floor(Date.now() / 1000) - 60;
    for (const at of [t0, t0 + 5, t0 + 10]) history.sampleAll(at * 1000);
    const seconds = async (id: string, query: string) => {
      const res = await app.request(`/sandboxes/${id}/metrics${query}`, { headers: api });
      expect(res.status).toBe(200);
      return ((await res.json()) as { timestampUnix: number; memTotal: number }[]).map((m) => m.timestampUnix);
    };
    expect(await seconds(running, "")).toEqual([t0, t0 + 5, t0 + 10]);
    expect(await seconds(running, `?start=${t0 + 5}&end=${t0 + 5}`)).toEqual([t0 + 5]);
    expect(await seconds(running, `?start=${t0 + 1}`)).toEqual([t0 + 5, t0 + 10]);
    expect(await seconds(running, `?end=${t0 + 9}`)).toEqual([t0, t0 + 5]);
    expect(await seconds(running, `?end=${t0 - 1}`)).toEqual([]);
    // Only running sandboxes are sampled; without a window and a history, one reading taken now.
    expect(await seconds(paused, `?start=${t0}`)).toEqual([]);
    const now = await seconds(paused, "");
    expect(now).toHaveLength(1);
    expect(Math.abs(now[0]! - Date.now() / 1000)).toBeLessThan(60);
    expect((await app.request(`/sandboxes/${running}/metrics?start=${t0 + 5}&end=${t0}`, { headers: api })).status).toBe(400);
    expect((await app.request(`/sandboxes/${running}/metrics?start=soon`, { headers: api })).status).toBe(400);

    // Bounded: the oldest samples make way; a sandbox that is gone is forgotten.
    for (let i = 1; i <= SAMPLES_KEPT; i++) history.sampleAll((t0 + 10 + i) * 1000);
    expect(history.window(running)).toHaveLength(SAMPLES_KEPT);
    expect(history.window(running)[0]?.at).toBe((t0 + 11) * 1000);
    const brief = "sbx_e2b0brief00000f";
    store.insert(record(brief, { createdAt: Date.now() }));
    history.sampleAll(Date.now());
    expect(history.window(brief)).toHaveLength(1);
    store.delete(brief);
    history.sampleAll(Date.now());
    expect(history.window(brief)).toEqual([]);
  });

  it("serves the same history on Stasis's own API for the console's charts: an hour, oldest first, network included", async () => {
    const t0 = Math.floor(Date.now() / 1000) - 30;
    for (const at of [t0, t0 + 5]) history.sampleAll(at * 1000);
    const res = await app.request(`/v1/sandboxes/${running}/metrics/history`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(200);
    const body = SandboxMetricsHistorySchema.parse(await res.json());
    expect(body.intervalMs).toBe(5000);
    expect(body.samples.slice(-2).map((m) => Date.parse(m.at) / 1000)).toEqual([t0, t0 + 5]);
    expect(body.samples.at(-1)).toMatchObject({ memoryLimitBytes: expect.any(Number), networkSentBytes: null });
    expect(SAMPLES_KEPT * 5000).toBe(3600_000);
    const missing = await app.request("/v1/sandboxes/sbx_0000000000000000/metrics/history", { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(missing.status).toBe(404);
  });

  it("answers 409 to pausing a paused sandbox, and 404 to killing an unknown one", async () => {
    expect((await app.request(`/sandboxes/${paused}/pause`, { method: "POST", headers: api })).status).toBe(409);
    expect((await app.request("/sandboxes/sbx_0000000000000000", { method: "DELETE", headers: api })).status).toBe(404);
  });

  it("refuses what it cannot do with a clear error", async () => {
    const post = (path: string, body: unknown) => app.request(path, { method: "POST", headers: api, body: JSON.stringify(body) });
    const template = await post("/v2/sandboxes", { templateID: "code-interpreter-v1" });
    expect(template.status).toBe(404);
    expect(((await template.json()) as { message: string }).message).toMatch(/template 'code-interpreter-v1' not found/);
    for (const body of [{ templateID: "base", mcp: { x: {} } }, { templateID: "base", autoPause: true, autoPauseMemory: false }, { templateID: "base", volumeMounts: [{ name: "v", path: "/v" }] }]) {
      const res = await post("/v2/sandboxes", body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toMatch(/not supported by Stasis/);
    }
    expect((await post(`/sandboxes/${paused}/connect`, { memory: false })).status).toBe(400);
    const snapshot = await post(`/sandboxes/${running}/snapshots`, {});
    expect(snapshot.status).toBe(501);
    expect((await app.request("/v3/templates", { method: "POST", headers: api, body: "{}" })).status).toBe(501);
    expect((await post("/v2/sandboxes", { templateID: "base", timeout: -1 })).status).toBe(400);
  });
});

describe("E2B sandbox traffic (envd)", () => {
  it("needs the sandbox's own access token", async () => {
    expect((await envd(running, "/health", { headers: { "x-access-token": "wrong" } })).status).toBe(401);
    expect((await envd(running, "/health", { headers: { "x-access-token": auth.envdToken(paused) } })).status).toBe(401);
  });

  it("answers /health 204 while running or idle, and E2B's exact 502 when paused or gone", async () => {
    expect((await envd(running, "/health")).status).toBe(204);
    expect((await envd(idle, "/health")).status).toBe(204);
    for (const id of [paused, lifetime, stopped, "sbx_0000000000000000"]) {
      const res = await envd(id, "/health");
      expect(res.status).toBe(502);
      expect(await res.text()).toBe(`{"message":"The sandbox was not found","sandboxId":"${id}","code":502}`);
    }
  });

  it("lets traffic wake a lifetime-paused sandbox created with autoResume", async () => {
    e2bStore.setAutoResume(lifetime, true);
    expect((await envd(lifetime, "/health")).status).toBe(204);
    e2bStore.setAutoResume(lifetime, false);
  });

  it("serves only envd's port", async () => {
    const res = await envd(running, "/", { headers: { "e2b-sandbox-port": "49999" } });
    expect(res.status).toBe(501);
    expect(((await res.json()) as { message: string }).message).toMatch(/port 49999/);
  });

  it("speaks Connect: JSON only, errors in the end-of-stream envelope, unsupported methods say so", async () => {
    const binary = await envd(running, "/process.Process/Start", { method: "POST", headers: { "content-type": "application/connect+proto" }, body: new Uint8Array(5) });
    expect(binary.status).toBe(200);
    const bytes = Buffer.from(await binary.arrayBuffer());
    expect(bytes[0]).toBe(0x02);
    expect(JSON.parse(bytes.subarray(5).toString())).toMatchObject({ error: { code: "unimplemented", message: expect.stringMatching(/JSON only/) } });

    const streamInput = await envd(running, "/process.Process/StreamInput", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(streamInput.status).toBe(501);
    expect(await streamInput.json()).toMatchObject({ code: "unimplemented", message: expect.stringMatching(/streaming stdin/) });

    const bad = await envd(running, "/filesystem.Filesystem/Stat", { method: "POST", headers: { "content-type": "application/json" }, body: '{"path":""}' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "invalid_argument" });

    // No runtime here: the sandbox cannot be reached, which Connect calls unavailable (the SDK's timeout error).
    const stat = await envd(running, "/filesystem.Filesystem/Stat", { method: "POST", headers: { "content-type": "application/json" }, body: '{"path":"/etc"}' });
    expect(stat.status).toBe(503);
    expect(await stat.json()).toMatchObject({ code: "unavailable" });
  });

  it("checks a signed file URL's signature, then its expiry, in envd's words", async () => {
    const sign = (path: string, expiration: number) =>
      `v1_${createHash("sha256").update(`${path}:read::${auth.envdToken(running)}:${expiration}`).digest("base64").replace(/=+$/, "")}`;
    const url = (path: string, signature: string, expiration: number) =>
      `/files?path=${encodeURIComponent(path)}&signature=${encodeURIComponent(signature)}&signature_expiration=${expiration}`;
    const past = Math.floor(Date.now() / 1000) - 10;
    const expired = await app.request(url("/etc/hostname", sign("/etc/hostname", past), past));
    expect(expired.status).toBe(401);
    expect(await expired.json()).toEqual({ code: 401, message: "signature is already expired" });
    const forged = await app.request(url("/etc/passwd", sign("/etc/hostname", past), past));
    expect(forged.status).toBe(401);
    expect(await forged.json()).toEqual({ code: 401, message: "invalid signature" });
  });

  it("resolves relative paths and ~ against the user's home", () => {
    expect(resolvePath("a/b.txt", "user")).toBe("/home/user/a/b.txt");
    expect(resolvePath("~/x", "root")).toBe("/root/x");
    expect(resolvePath("/tmp/../etc/", "user")).toBe("/etc");
    expect(resolvePath(".", "user")).toBe("/home/user");
    expect(() => resolvePath("a\0b", "user")).toThrow(/NUL/);
  });
});
