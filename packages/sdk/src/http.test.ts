import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConnection } from "./connection.js";
import { ConnectionError, ProtocolError, TimeoutError } from "./errors.js";
import { Sandbox } from "./sandbox.js";
import { delay, sandboxResource, sendJson, startFakeDaemon, type FakeDaemon } from "./test-support/fake-daemon.js";

const ID = "sbx_0123456789abcdef";

describe("replies", () => {
  let daemon: FakeDaemon;
  let reply: (path: string) => unknown = () => sandboxResource();
  beforeAll(async () => {
    daemon = await startFakeDaemon(async (req, res) => {
      if (req.url.pathname.endsWith("/slow")) await delay(500);
      const body = reply(req.url.pathname);
      if (typeof body === "string") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(body);
      } else sendJson(res, req.method === "POST" ? 201 : 200, body);
    });
  });
  afterAll(() => daemon.close());
  const conn = () => ({ apiUrl: `${daemon.url}/`, apiKey: "sk_test" });

  it("parses a valid reply and sends the key", async () => {
    reply = () => sandboxResource(ID);
    const sandbox = await Sandbox.connect(ID, conn());
    expect(sandbox.id).toBe(ID);
    expect(sandbox.info.state).toBe("running");
    const req = daemon.requests.at(-1)!;
    expect(req.url.pathname).toBe(`/v1/sandboxes/${ID}`);
    expect(req.headers.authorization).toBe("Bearer sk_test");
  });

  it("throws ProtocolError for a reply that fails schema validation", async () => {
    reply = () => sandboxResource("not-an-id", { state: "dreaming" });
    const err = await Sandbox.connect(ID, conn()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err).toMatchObject({ code: "protocol_error", status: 200 });
    expect((err as Error).message).toMatch(/id|state/);
  });

  it("throws ProtocolError for a reply that is not JSON", async () => {
    reply = () => "<html>";
    await expect(Sandbox.connect(ID, conn())).rejects.toBeInstanceOf(ProtocolError);
  });

  it("encodes list filters into the query", async () => {
    reply = () => ({ sandboxes: [sandboxResource(ID)], nextCursor: null });
    const page = await Sandbox.list({ state: "running", metadata: { team: "ml", env: "a&b" }, limit: 5 }, conn());
    expect(page.sandboxes).toHaveLength(1);
    const q = daemon.requests.at(-1)!.url.searchParams;
    expect(Object.fromEntries(q)).toEqual({ state: "running", limit: "5", metadata: "team=ml&env=a%26b" });
  });

  it("pages through listAll until the cursor runs out", async () => {
    reply = () => {
      const cursor = daemon.requests.at(-1)!.url.searchParams.get("cursor");
      return cursor ? { sandboxes: [sandboxResource("sbx_bbbbbbbbbbbbbbbb")], nextCursor: null } : { sandboxes: [sandboxResource("sbx_aaaaaaaaaaaaaaaa")], nextCursor: "c1" };
    };
    const ids: string[] = [];
    for await (const s of Sandbox.listAll({}, conn())) ids.push(s.id);
    expect(ids).toEqual(["sbx_aaaaaaaaaaaaaaaa", "sbx_bbbbbbbbbbbbbbbb"]);
  });

  it("sends create options as the body, without the connection options", async () => {
    reply = () => sandboxResource(ID);
    await Sandbox.create({ template: "base", cpu: 2, metadata: { a: "b" }, ...conn() });
    const req = daemon.requests.at(-1)!;
    expect(req.method).toBe("POST");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(req.body.toString())).toEqual({ template: "base", cpu: 2, metadata: { a: "b" } });
  });

  it("uploads raw bytes, including from a ReadableStream", async () => {
    const fileInfo = { name: "f", path: "/tmp/f", type: "file", size: 6, mode: 420, mtime: "2025-01-01T00:00:00.000Z", uid: 0, gid: 0, symlinkTarget: null };
    reply = (path) => (path.endsWith("/files") ? fileInfo : sandboxResource(ID));
    const sandbox = await Sandbox.connect(ID, conn());
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("abc"));
        controller.enqueue(new TextEncoder().encode("def"));
        controller.close();
      },
    });
    const info = await sandbox.files.write("/tmp/f", body, { mode: "644" });
    expect(info.size).toBe(6);
    const req = daemon.requests.at(-1)!;
    expect(req.method).toBe("PUT");
    expect(req.headers["content-type"]).toBe("application/octet-stream");
    expect(req.body.toString()).toBe("abcdef");
    expect(Object.fromEntries(req.url.searchParams)).toEqual({ path: "/tmp/f", mode: "644" });
  });

  it("gives up after requestTimeoutMs with a TimeoutError", async () => {
    reply = () => sandboxResource(ID);
    const err = await Sandbox.connect("slow", { ...conn(), requestTimeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err).toMatchObject({ code: "request_timeout", retryable: true });
  });

  it("passes the caller's abort through unchanged", async () => {
    const sandbox = await Sandbox.connect(ID, conn());
    const controller = new AbortController();
    controller.abort(new Error("mine"));
    await expect(sandbox.files.read("/x", { signal: controller.signal })).rejects.toThrow("mine");
  });
});

describe("connection", () => {
  it("reports an unreachable daemon as ConnectionError", async () => {
    const err = await Sandbox.connect(ID, { apiUrl: "http://127.0.0.1:1" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: "connection_failed", status: null, retryable: true });
  });

  it("defaults from the environment, then the daemon's key file", () => {
    const dir = mkdtempSync(join(tmpdir(), "stasis-sdk-"));
    writeFileSync(join(dir, "api-key"), "sk_from_file\n");
    expect(resolveConnection({}, { STASIS_DATA_DIR: dir })).toMatchObject({ apiUrl: "http://127.0.0.1:7070", apiKey: "sk_from_file" });
    expect(resolveConnection({}, { STASIS_DATA_DIR: dir, STASIS_API_KEY: "sk_env", STASIS_API_URL: "http://h:1/" })).toMatchObject({ apiUrl: "http://h:1", apiKey: "sk_env" });
    expect(resolveConnection({ apiKey: "sk_opt" }, { STASIS_API_KEY: "sk_env" }).apiKey).toBe("sk_opt");
    expect(resolveConnection({}, { STASIS_DATA_DIR: join(dir, "missing") }).apiKey).toBeUndefined();
  });
});
