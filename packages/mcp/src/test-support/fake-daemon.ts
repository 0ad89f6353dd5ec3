import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { createStasisMcpServer, type StasisMcpOptions } from "../server.js";

export const ID = "sbx_0123456789abcdef";
export const SANDBOX = {
  id: ID, template: "base", runtime: "crun", state: "running", stateReason: null, cpu: 1, memoryMiB: 512, diskMiB: 4096,
  env: {}, metadata: {}, timeoutMs: 300000, onTimeout: "standby", idleTimeoutMs: 15000, hibernateAfterMs: 600000,
  createdAt: "2025-01-01T00:00:00.000Z", expiresAt: "2025-01-01T00:05:00.000Z", standbySince: null, standbyReason: null,
  forkedFrom: null, createdVia: "cold",
};

export type Route = (url: URL, init: RequestInit) => Response | Promise<Response>;

export const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
export const ndjson = (lines: unknown[]) => new Response(lines.map((l) => `${JSON.stringify(l)}\n`).join(""), { headers: { "content-type": "application/x-ndjson" } });
export const apiError = (code: string, message: string, status: number) => json({ error: { code, message, retryable: false } }, status);

/**
 * A daemon answered by `routes` ("GET /v1/sandboxes/ID" → handler; the sandbox itself is answered unless
 * overridden), and an MCP client connected in memory to a server that uses it.
 */
export async function connectToFake(routes: Record<string, Route>, options: Partial<StasisMcpOptions> = {}): Promise<{ client: Client; calls: string[] }> {
  const calls: string[] = [];
  const all: Record<string, Route> = { [`GET /v1/sandboxes/${ID}`]: () => json(SANDBOX), ...routes };
  const fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    const key = `${init.method ?? "GET"} ${url.pathname}`;
    calls.push(`${key}${url.search}`);
    const route = all[key];
    return route ? route(url, init) : apiError("route_not_found", `no route ${key}`, 404);
  };
  const server = createStasisMcpServer({ ...options, connection: { apiUrl: "http://daemon.test", apiKey: "k-0123456789abcdef", fetch: fetch as typeof globalThis.fetch } });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: "unit", version: "1.0.0" });
  await client.connect(clientSide);
  return { client, calls };
}

export async function callTool(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

export function textOf(result: CallToolResult): string {
  return result.content.flatMap((c) => (c.type === "text" ? [c.text] : [])).join("\n");
}
