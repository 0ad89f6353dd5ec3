import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { connect } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { errorRegistry, type ErrorCode } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import type { PreviewService } from "../services/preview-service.js";

/** `GET /v1/sandboxes/{id}/ports/{port}/connect` with `Upgrade: tcp`: the connection becomes the port's bytes. */
const PATH = /^\/v1\/sandboxes\/(sbx_[a-z0-9]{16})\/ports\/(\d{1,5})\/connect(?:\?.*)?$/;
export const TCP_UPGRADE = "tcp";

export interface ForwardRoute {
  sandboxId: string;
  port: number;
}

/** Whether an upgrade request is a port-forward (by path; the method, upgrade token and key are checked in `handle`). */
export function forwardRouteOf(url: string | undefined): ForwardRoute | null {
  const m = PATH.exec(url ?? "");
  if (!m) return null;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { sandboxId: m[1]!, port } : null;
}

function refuse(socket: Duplex, code: ErrorCode, message: string): void {
  const status = errorRegistry[code].status;
  const body = JSON.stringify({ error: { code, message, requestId: "port-forward", retryable: errorRegistry[code].retryable } });
  socket.end(`HTTP/1.1 ${status} ${code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/**
 * Raw TCP into a sandbox's port for the API key's holder (`stasis port-forward`): a database, an SSH server,
 * anything not HTTP. The sandbox is woken first and held awake while the connection is open.
 */
export class PortForward {
  private readonly expected: Buffer;

  constructor(
    private readonly preview: PreviewService,
    apiKey: string,
    private readonly log: Logger,
  ) {
    this.expected = Buffer.from(`Bearer ${apiKey}`);
  }

  async handle(req: IncomingMessage, socket: Duplex, head: Buffer, route: ForwardRoute): Promise<void> {
    socket.on("error", () => socket.destroy());
    const given = Buffer.from(req.headers.authorization ?? "");
    if (given.length !== this.expected.length || !timingSafeEqual(given, this.expected)) return refuse(socket, "unauthorized", "missing or wrong API key: send `Authorization: Bearer <key>`");
    if (req.method !== "GET" || (req.headers.upgrade ?? "").toLowerCase() !== TCP_UPGRADE) return refuse(socket, "invalid_request", `a port-forward is GET with 'Connection: Upgrade' and 'Upgrade: ${TCP_UPGRADE}'`);
    let target;
    try {
      target = await this.preview.openAsOwner(route.sandboxId);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError("internal", "internal error; see the daemon log");
      if (e.code === "internal") this.log.error({ err, sandbox: route.sandboxId }, "port-forward failed");
      return refuse(socket, e.code, e.message);
    }
    const upstream = connect({ host: target.address, port: route.port });
    target.track(upstream, { idle: false });
    let opened = false;
    // An open forward keeps its sandbox awake; the idle clock starts when it closes. A refusal is written
    // (socket.end) rather than cut off.
    const close = () => {
      target.release();
      upstream.destroy();
      if (opened) socket.destroy();
    };
    upstream.once("connect", () => {
      opened = true;
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${TCP_UPGRADE}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.once("error", (err: NodeJS.ErrnoException) => {
      if (!opened) refuse(socket, err.code === "ECONNREFUSED" ? "port_closed" : "sandbox_failed", err.code === "ECONNREFUSED" ? `nothing listens on port ${route.port} in sandbox ${route.sandboxId}` : `sandbox ${route.sandboxId} port ${route.port}: ${err.code ?? err.message}`);
      close();
    });
    upstream.once("close", close);
    socket.once("close", close);
  }
}
