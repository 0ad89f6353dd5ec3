import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMcpHttpHandler, type McpHttpHandler } from "./http.js";

const KEY = "k-0123456789abcdef";
let server: Server;
let handler: McpHttpHandler;
let port: number;
let daemonCalls = 0;
/** Resolves when the daemon's command stream request is closed by its client (the tool). */
let streamClosed: Promise<void> = new Promise(() => undefined);
const SANDBOX = {
  id: "sbx_0123456789abcdef", template: "base", runtime: "crun", state: "running", stateReason: null, cpu: 1, memoryMiB: 512, diskMiB: 4096,
  env: {}, metadata: {}, timeoutMs: 300000, onTimeout: "standby", idleTimeoutMs: 15000, hibernateAfterMs: 600000,
  createdAt: "2025-01-01T00:00:00.000Z", expiresAt: "2025-01-01T00:05:00.000Z", standbySince: null, standbyReason: null, forkedFrom: null, createdVia: "cold",
};

beforeAll(async () => {
  // The "daemon" the tools call: it answers every call with sandbox_not_found.
  const daemon = createServer((req, res) => {
    daemonCalls++;
    if (req.url === "/v1/sandboxes/sbx_1123456789abcdef") return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ...SANDBOX, id: "sbx_1123456789abcdef" }));
    if (req.url === "/v1/sandboxes/sbx_1123456789abcdef/commands/stream") {
      // A command that never ends: only its client going away ends the request.
      res.writeHead(200, { "content-type": "application/x-ndjson" }).write(`${JSON.stringify({ type: "start", pid: 1 })}\n`);
      streamClosed = new Promise((resolve) => res.once("close", () => resolve()));
      return;
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "sandbox_not_found", message: "no such sandbox", retryable: false } }));
  });
  await new Promise<void>((resolve) => daemon.listen(0, "127.0.0.1", resolve));
  const daemonPort = (daemon.address() as AddressInfo).port;
  server = createServer((req, res) => void handler.handle(req, res));
  handler = createMcpHttpHandler({ apiKey: KEY, apiUrl: () => `http://127.0.0.1:${daemonPort}`, allowedHosts: ["localhost", "127.0.0.1"], maxBodyBytes: 64 * 1024 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  server.on("close", () => daemon.close());
});

afterAll(async () => {
  handler.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function post(headers: Record<string, string>, body: string, method = "POST"): Promise<{ status: number; body: string; session: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/mcp", method, headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers } }, (res) => {
      let text = "";
      const session = res.headers["mcp-session-id"];
      res.setEncoding("utf8").on("data", (d: string) => (text += d)).on("end", () => resolve({ status: res.statusCode ?? 0, body: text, session: typeof session === "string" ? session : undefined }));
    });
    req.on("error", reject);
    req.end(method === "POST" ? body : undefined);
  });
}

const LIST = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} });
const INITIALIZE = JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } });

describe("Streamable HTTP handler", () => {
  it("serves the SDK's client with the key, and tool calls reach the daemon with it", async () => {
    const client = new Client({ name: "unit", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`http://localhost:${port}/mcp`), { requestInit: { headers: { authorization: `Bearer ${KEY}` } } }));
    expect((await client.listTools()).tools.map((t) => t.name)).toContain("run_code");
    const result = await client.callTool({ name: "kill_sandbox", arguments: { sandboxId: "sbx_0123456789abcdef" } });
    expect(result.isError).toBe(true);
    expect(result.content).toEqual([{ type: "text", text: "error [sandbox_not_found]: no such sandbox" }]);
    expect(daemonCalls).toBe(1);
    await client.close();
  });

  it("a client that gives up on a call ends the tool's request to the daemon (its command is killed)", async () => {
    const client = new Client({ name: "unit", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`http://localhost:${port}/mcp`), { requestInit: { headers: { authorization: `Bearer ${KEY}` } } }));
    const started = daemonCalls;
    const call = client.callTool({ name: "run_command", arguments: { sandboxId: "sbx_1123456789abcdef", command: "sleep 300" } }, undefined, { signal: AbortSignal.timeout(500) });
    await expect(call).rejects.toThrow();
    await streamClosed;
    expect(daemonCalls).toBe(started + 2);
    await client.close();
  });

  it("refuses without the key (401), from another host or origin (403), GET (405), bodies over the bound (413)", async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    const noKey = await post({}, INITIALIZE);
    expect(noKey.status).toBe(401);
    expect(JSON.parse(noKey.body)).toMatchObject({ jsonrpc: "2.0", error: { message: expect.stringContaining("unauthorized") as unknown } });
    expect((await post({ authorization: `Bearer ${KEY}x` }, INITIALIZE)).status).toBe(401);
    expect((await post({ ...auth, host: "rebound.example" }, INITIALIZE)).status).toBe(403);
    expect((await post({ ...auth, origin: "http://rebound.example" }, INITIALIZE)).status).toBe(403);
    expect((await post(auth, "", "GET")).status).toBe(405);
    expect((await post(auth, JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { pad: "x".repeat(100_000) } }))).status).toBe(413);
  });

  it("keeps a session from initialize to DELETE; an unknown session is 404, a request outside any session 400", async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    expect((await post(auth, LIST)).status).toBe(400);
    const started = await post(auth, INITIALIZE);
    expect(started.status).toBe(200);
    const session = { ...auth, "mcp-session-id": started.session!, "mcp-protocol-version": "2025-06-18" };
    expect((await post(session, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }))).status).toBe(202);
    const listed = await post(session, LIST);
    expect(listed.status).toBe(200);
    expect(listed.body).toContain("create_sandbox");
    expect((await post(session, "", "DELETE")).status).toBe(200);
    expect((await post(session, LIST)).status).toBe(404);
    expect((await post(auth, "", "DELETE")).status).toBe(400);
  });
});
