import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createStasisMcpServer, type StasisMcpOptions } from "../server.js";
import { HostCheck } from "./host-check.js";

export interface McpHttpOptions extends Omit<StasisMcpOptions, "connection"> {
  /** The daemon's API key: callers send it as a bearer token, and the tools call the API with it. */
  apiKey: string;
  /** The daemon's own API on loopback (known once it listens). */
  apiUrl: () => string;
  /** Host names (no port) the endpoint answers to; see HostCheck. */
  allowedHosts: readonly string[];
  /** Largest JSON-RPC body accepted (a write_file's content travels in it). Default 8 MiB. */
  maxBodyBytes?: number;
}

export type McpHttpHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** A JSON-RPC error reply outside any request (the transport's own shape for refusals). */
function refuse(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
}

/**
 * Streamable HTTP, stateless: each POST gets a fresh server and transport, so the endpoint keeps no session
 * state for clients that vanish. No server-initiated stream (GET answers 405, as the spec allows).
 */
export function createMcpHttpHandler(options: McpHttpOptions): McpHttpHandler {
  const hosts = new HostCheck(options.allowedHosts);
  const expected = Buffer.from(`Bearer ${options.apiKey}`);
  return async (req, res) => {
    const refusal = hosts.refusal(req.headers.host, req.headers.origin);
    if (refusal) return refuse(res, 403, `forbidden: ${refusal}`);
    const given = Buffer.from(req.headers.authorization ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return refuse(res, 401, "unauthorized: send the daemon's API key as `Authorization: Bearer <key>`", { "www-authenticate": 'Bearer realm="stasis"' });
    }
    if (req.method !== "POST") return refuse(res, 405, "method not allowed: this endpoint is stateless; send JSON-RPC requests by POST", { allow: "POST" });
    const server = createStasisMcpServer({ ...options, connection: { apiUrl: options.apiUrl(), apiKey: options.apiKey } });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, maxRequestBodySize: options.maxBodyBytes ?? 8 * 1024 * 1024 });
    res.once("close", () => {
      void transport.close().catch(() => undefined);
      void server.close().catch(() => undefined);
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res);
    } catch (err) {
      refuse(res, 500, `internal: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
}
