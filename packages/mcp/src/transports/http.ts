import { randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createStasisMcpServer, type StasisMcpOptions } from "../server.js";
import { HostCheck } from "./host-check.js";
import { Sessions } from "./sessions.js";

export interface McpHttpOptions extends Omit<StasisMcpOptions, "connection"> {
  /** The daemon's API key: callers send it as a bearer token, and the tools call the API with it. */
  apiKey: string;
  /** The daemon's own API on loopback (known once it listens). */
  apiUrl: () => string;
  /** Host names (no port) the endpoint answers to; see HostCheck. */
  allowedHosts: readonly string[];
  /** Largest JSON-RPC body accepted (a write_file's content travels in it). Default 8 MiB. */
  maxBodyBytes?: number;
  /** Sessions kept at most (default 256) and how long an unused one lives (default 30 min). */
  maxSessions?: number;
  sessionIdleMs?: number;
}

export interface McpHttpHandler {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Closes every session (calls in flight are aborted). */
  close(): void;
}

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
 * Streamable HTTP with sessions: POST carries JSON-RPC (an initialize without a session starts one),
 * DELETE ends a session, GET answers 405 (no server-initiated stream: the tools send none).
 */
export function createMcpHttpHandler(options: McpHttpOptions): McpHttpHandler {
  const hosts = new HostCheck(options.allowedHosts);
  const expected = Buffer.from(`Bearer ${options.apiKey}`);
  const sessions = new Sessions(options.maxSessions ?? 256, options.sessionIdleMs ?? 30 * 60_000);

  async function startSession(): Promise<StreamableHTTPServerTransport> {
    const server = createStasisMcpServer({ ...options, connection: { apiUrl: options.apiUrl(), apiKey: options.apiKey } });
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      maxRequestBodySize: options.maxBodyBytes ?? 8 * 1024 * 1024,
      onsessioninitialized: (id) => sessions.add(id, { server, transport }),
      onsessionclosed: (id) => sessions.drop(id),
    });
    // A transport whose initialize failed never becomes a session: nothing else holds it.
    await server.connect(transport);
    return transport;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refusal = hosts.refusal(req.headers.host, req.headers.origin);
    if (refusal) return refuse(res, 403, `forbidden: ${refusal}`);
    const given = Buffer.from(req.headers.authorization ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return refuse(res, 401, "unauthorized: send the daemon's API key as `Authorization: Bearer <key>`", { "www-authenticate": 'Bearer realm="stasis"' });
    }
    if (req.method !== "POST" && req.method !== "DELETE") return refuse(res, 405, "method not allowed: send JSON-RPC by POST (DELETE ends a session)", { allow: "POST, DELETE" });
    const id = req.headers["mcp-session-id"];
    let transport: StreamableHTTPServerTransport;
    if (typeof id === "string") {
      const session = sessions.get(id);
      if (!session) return refuse(res, 404, "session not found: it ended or expired; initialize a new one");
      transport = session.transport;
    } else if (req.method === "POST") transport = await startSession();
    else return refuse(res, 400, "bad request: DELETE needs the mcp-session-id header");
    try {
      await transport.handleRequest(req, res);
    } catch (err) {
      refuse(res, 500, `internal: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  return { handle, close: () => sessions.close() };
}
