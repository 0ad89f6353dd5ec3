import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMcpHttpHandler } from "./http.js";

const KEY = "k-0123456789abcdef";
let server: Server;
let port: number;
let daemonCalls = 0;

beforeAll(async () => {
  // The "daemon" the tools call: it answers every call with sandbox_not_found.
  const daemon = createServer((_req, res) => {
    daemonCalls++;
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "sandbox_not_found", message: "no such sandbox", retryable: false } }));
  });
  await new Promise<void>((resolve) => daemon.listen(0, "127.0.0.1", resolve));
  const daemonPort = (daemon.address() as AddressInfo).port;
  server = createServer((req, res) => void handler(req, res));
  const handler = createMcpHttpHandler({ apiKey: KEY, apiUrl: () => `http://127.0.0.1:${daemonPort}`, allowedHosts: ["localhost", "127.0.0.1"], maxBodyBytes: 64 * 1024 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  server.on("close", () => daemon.close());
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function post(headers: Record<string, string>, body: string, method = "POST"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/mcp", method, headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (d: string) => (text += d)).on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(method === "POST" ? body : undefined);
  });
}

const LIST = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} });

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

  it("refuses without the key (401), from another host or origin (403), other methods (405), bodies over the bound (413)", async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    const noKey = await post({}, LIST);
    expect(noKey.status).toBe(401);
    expect(JSON.parse(noKey.body)).toMatchObject({ jsonrpc: "2.0", error: { message: expect.stringContaining("unauthorized") as unknown } });
    expect((await post({ authorization: `Bearer ${KEY}x` }, LIST)).status).toBe(401);
    expect((await post({ ...auth, host: "rebound.example" }, LIST)).status).toBe(403);
    expect((await post({ ...auth, origin: "http://rebound.example" }, LIST)).status).toBe(403);
    expect((await post(auth, "", "GET")).status).toBe(405);
    expect((await post(auth, "", "DELETE")).status).toBe(405);
    expect((await post(auth, JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { pad: "x".repeat(100_000) } }))).status).toBe(413);
    expect((await post(auth, LIST)).status).toBe(200);
  });
});
