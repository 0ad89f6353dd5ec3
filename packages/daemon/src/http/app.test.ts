import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildOpenApi, DoctorReportSchema, ErrorResponseSchema, routes } from "@stasis/protocol";
import { createApp } from "./app.js";
import { testApp } from "./test-support/test-app.js";

// The HTTP layer in-process (no runtime): auth, validation and the error shape of every failure path.
const { app, services, metrics, log, close } = testApp();
afterAll(close);

const auth = { authorization: "Bearer k-0123456789abcdef" };
async function error(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  const body = ErrorResponseSchema.parse(await res.json());
  expect(body.error.code).toBe(code);
  expect(body.error.requestId).toBeTruthy();
  return body.error;
}

describe("http app", () => {
  it("serves health and the OpenAPI document without a key", async () => {
    expect((await app.request("/healthz")).status).toBe(200);
    const res = await app.request("/v1/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { paths: Record<string, unknown> };
    for (const route of Object.values(routes)) expect(doc.paths[route.path]).toBeDefined();
    expect(doc).toEqual(buildOpenApi());
  });

  it("runs the host checks on GET /v1/doctor, with the key only", async () => {
    await error(await app.request("/v1/doctor"), 401, "unauthorized");
    const res = await app.request("/v1/doctor", { headers: auth });
    expect(res.status).toBe(200);
    expect(DoctorReportSchema.parse(await res.json()).checks).toEqual([{ name: "root", ok: true, severity: "error", detail: "running as root" }]);
  });

  it("refuses a missing or wrong key with 401 unauthorized", async () => {
    await error(await app.request("/v1/sandboxes"), 401, "unauthorized");
    await error(await app.request("/v1/sandboxes", { headers: { authorization: "Bearer nope" } }), 401, "unauthorized");
  });

  it("validates bodies and queries with the contract", async () => {
    const post = (body: string, type = "application/json") =>
      app.request("/v1/sandboxes", { method: "POST", headers: { ...auth, "content-type": type }, body });
    await error(await post("{bad json"), 400, "invalid_request");
    const e = await error(await post(JSON.stringify({ memoryMiB: 1 })), 400, "invalid_request");
    expect(e.message).toMatch(/memoryMiB/);
    await error(await post(JSON.stringify({ unknownField: 1 })), 400, "invalid_request");
    await error(await post("x=1", "text/plain"), 415, "unsupported_media_type");
    await error(await app.request("/v1/sandboxes?limit=0", { headers: auth }), 400, "invalid_request");
  });

  it("says which runtime is unusable rather than failing obscurely", async () => {
    const res = await app.request("/v1/sandboxes", { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: "{}" });
    await error(res, 503, "runtime_unavailable");
  });

  it("returns 404s with stable codes", async () => {
    await error(await app.request("/v1/sandboxes/sbx_0000000000000000", { headers: auth }), 404, "sandbox_not_found");
    await error(await app.request("/v1/sandboxes/sbx_0000000000000000/commands/run", { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: '{"cmd":"true"}' }), 404, "sandbox_not_found");
    await error(await app.request("/v1/nope", { headers: auth }), 404, "route_not_found");
  });

  it("issues, lists and revokes E2B keys; the key itself is shown once", async () => {
    const json = { ...auth, "content-type": "application/json" };
    const created = await app.request("/v1/e2b/keys", { method: "POST", headers: json, body: '{"name":"ci"}' });
    expect(created.status).toBe(201);
    const key = (await created.json()) as { id: string; key: string; prefix: string };
    expect(key.key).toMatch(/^e2b_[0-9a-f]{40}$/);
    expect(key.key.startsWith(key.prefix)).toBe(true);
    const listed = (await (await app.request("/v1/e2b/keys", { headers: auth })).json()) as { keys: Record<string, unknown>[] };
    expect(listed.keys).toEqual([expect.objectContaining({ id: key.id, name: "ci", lastUsedAt: null })]);
    expect(JSON.stringify(listed)).not.toContain(key.key);
    expect((await app.request(`/v1/e2b/keys/${key.id}`, { method: "DELETE", headers: auth })).status).toBe(204);
    await error(await app.request(`/v1/e2b/keys/${key.id}`, { method: "DELETE", headers: auth }), 404, "key_not_found");
    await error(await app.request("/v1/e2b/keys", { method: "POST", headers: json, body: '{"name":""}' }), 400, "invalid_request");
  });

  it("lists an empty store and exposes metrics", async () => {
    const res = await app.request("/v1/sandboxes", { headers: auth });
    expect(await res.json()).toEqual({ sandboxes: [], nextCursor: null });
    const text = await (await app.request("/metrics", { headers: auth })).text();
    expect(text).toContain("stasis_http_requests_total");
    expect(text).toContain("stasis_sandboxes");
  });

  it("serves /metrics without a key to loopback clients only, by default", async () => {
    const from = (remoteAddress: string) => ({ incoming: { socket: { remoteAddress } } });
    for (const address of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) expect((await app.request("/metrics", {}, from(address))).status).toBe(200);
    await error(await app.request("/metrics", {}, from("10.1.2.3")), 401, "unauthorized");
    await error(await app.request("/metrics", {}, from("::ffff:192.168.0.9")), 401, "unauthorized");
    expect((await app.request("/metrics", { headers: auth }, from("10.1.2.3"))).status).toBe(200);
    // key: even loopback needs the key; none: nobody does.
    const keyed = createApp({ apiKey: "k-0123456789abcdef", log, metrics, services, metricsAuth: "key" });
    await error(await keyed.request("/metrics", {}, from("127.0.0.1")), 401, "unauthorized");
    const open = createApp({ apiKey: "k-0123456789abcdef", log, metrics, services, metricsAuth: "none" });
    expect((await open.request("/metrics", {}, from("10.1.2.3"))).status).toBe(200);
  });

  it("validates template builds before building: the spec's line, reserved names, unknown templates", async () => {
    const ctx = mkdtempSync(join(tmpdir(), "stasis-ctx-"));
    const tarOf = (files: Record<string, string>) => {
      rmSync(ctx, { recursive: true, force: true });
      mkdirSync(ctx);
      for (const [name, text] of Object.entries(files)) writeFileSync(join(ctx, name), text);
      return execFileSync("tar", ["-C", ctx, "-cf", "-", "."]);
    };
    const post = (query: string, body: Uint8Array) => app.request(`/v1/templates/build?${query}`, { method: "POST", headers: auth, body });
    const bad = await error(await post("name=web", tarOf({ Dockerfile: "FROM base\nRUN true\nFROBNICATE\n" })), 422, "invalid_template");
    expect(bad).toMatchObject({ details: { file: "Dockerfile", line: 3 } });
    await error(await post("name=web", tarOf({ "notes.txt": "no spec here" })), 422, "invalid_template");
    await error(await post("name=web&file=../etc/passwd", tarOf({ Dockerfile: "FROM base\n" })), 422, "invalid_template");
    await error(await post("name=base", tarOf({ Dockerfile: "FROM base\n" })), 422, "invalid_template");
    await error(await post("name=Bad_Name", tarOf({ Dockerfile: "FROM base\n" })), 400, "invalid_request");
    await error(await post("name=web", new TextEncoder().encode("not a tar archive at all")), 422, "invalid_template");
    // A valid spec on an unknown base fails in the stream, at step 1.
    const res = await post("name=web", tarOf({ "stasis.yaml": "from: nosuch\n" }));
    expect(res.status).toBe(200);
    const events = (await res.text()).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.at(-1)).toMatchObject({ type: "error", code: "invalid_template", step: 1, line: 1 });
    rmSync(ctx, { recursive: true, force: true });
  });

  it("lists, gets and deletes templates with stable codes", async () => {
    expect(await (await app.request("/v1/templates", { headers: auth })).json()).toEqual({ templates: [] });
    await error(await app.request("/v1/templates/nosuch", { headers: auth }), 404, "template_not_found");
    await error(await app.request("/v1/templates/nosuch:2", { method: "DELETE", headers: auth }), 404, "template_not_found");
    await error(await app.request("/v1/templates/base", { method: "DELETE", headers: auth }), 400, "invalid_request");
    await error(await app.request("/v1/templates/nosuch", { method: "PUT", headers: { ...auth, "content-type": "application/json" }, body: '{"pool":2}' }), 404, "template_not_found");
  });
});
