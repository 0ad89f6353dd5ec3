import type { IncomingMessage, ServerResponse } from "node:http";
import type { McpHttpHandler } from "@stasis/mcp";
import type { Logger } from "pino";

/** Whether a request is for the MCP endpoint (`/mcp`, any query). */
export function isMcpRequest(url: string | undefined): boolean {
  return url === "/mcp" || url?.startsWith("/mcp?") === true;
}

export interface McpEndpointOptions {
  apiKey: string;
  /** The daemon's address as it listens: the tools call the API there, on loopback. */
  listenHost: string;
  port: () => number;
  /** Host names the endpoint answers to besides the local ones (STASIS_MCP_ALLOWED_HOSTS). */
  extraHosts: readonly string[];
  log: Logger;
}

/**
 * Streamable HTTP MCP at /mcp, with sessions (bounded, see @stasis/mcp's Sessions). The tools are the same as `stasis mcp`'s, written against the SDK: they
 * call this daemon's own API on loopback with the caller's key, so every check and error code of the API
 * applies unchanged. The MCP package loads on the first request (about half a second), not at start.
 */
export class McpEndpoint {
  private handler: Promise<McpHttpHandler> | null = null;

  constructor(private readonly options: McpEndpointOptions) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      this.handler ??= this.load();
      await (await this.handler).handle(req, res);
    } catch (err) {
      this.options.log.error({ err }, "MCP request failed");
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32603, message: "internal error" }, id: null }));
      else res.destroy();
    }
  }

  /** Ends every MCP session (their calls in flight are aborted). */
  async close(): Promise<void> {
    const handler = this.handler;
    this.handler = null;
    (await handler?.catch(() => null))?.close();
  }

  private async load(): Promise<McpHttpHandler> {
    const { createMcpHttpHandler, defaultAllowedHosts } = await import("@stasis/mcp");
    const { apiKey, listenHost, port, extraHosts } = this.options;
    return createMcpHttpHandler({
      apiKey,
      apiUrl: () => `http://${loopbackHost(listenHost)}:${port()}`,
      allowedHosts: [...defaultAllowedHosts(listenHost), ...extraHosts],
    });
  }
}

/** Where this daemon answers on its own host: a wildcard listener answers on 127.0.0.1 (or ::1). */
function loopbackHost(host: string): string {
  if (host === "" || host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}
