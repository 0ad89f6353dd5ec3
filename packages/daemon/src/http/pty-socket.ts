import { randomUUID, timingSafeEqual } from "node:crypto";
import { STATUS_CODES, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { PTY_CLOSE_STANDBY, PtyClientMessageSchema, PtyConnectQuerySchema, type PtyServerMessage } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import type { OutputEvent } from "../services/exec-service.js";
import type { PtyService } from "../services/pty-service.js";
import { errorBody, toApiError } from "./http-errors.js";
import { parseWith } from "./validation.js";

const PATH = /^\/v1\/sandboxes\/([A-Za-z0-9_-]{1,128})\/pty$/;
/** Output waits while this much is unsent to the client: a slow client slows the terminal, never the daemon. */
const HIGH_WATER_BYTES = 1024 * 1024;
/** Keystrokes not yet delivered to the sandbox; past this the client floods and is disconnected. */
const MAX_PENDING_INPUT_BYTES = 8 * 1024 * 1024;
const KEY_PROTOCOL = "stasis.key.";

/**
 * The terminal WebSocket (`GET /v1/sandboxes/{id}/pty`), on the server's upgrade event (the hono app
 * never sees upgrades). Everything that can fail before the terminal is attached (auth, query, unknown
 * sandbox or pid, an agent without terminals) is an ordinary HTTP error reply; afterwards errors are an
 * `error` message and close 1011. A client that goes away only detaches: the terminal lives on.
 */
export class PtySocket {
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 1024 * 1024,
    // A client that offers a subprotocol must get one back (browsers and ws fail the handshake
    // otherwise): `stasis.pty` when offered beside the key, else the key's own, which it sent anyway.
    handleProtocols: (protocols) => [...protocols].find((p) => !p.startsWith(KEY_PROTOCOL)) ?? [...protocols][0] ?? false,
  });

  constructor(
    private readonly apiKey: string,
    private readonly pty: PtyService,
    private readonly log: Logger,
  ) {}

  /** Takes the upgrade when it is for a terminal; false leaves it to the caller. */
  route(req: IncomingMessage): string | null {
    const url = new URL(req.url ?? "/", "http://x");
    return PATH.exec(url.pathname)?.[1] ?? null;
  }

  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, id: string): Promise<void> {
    const requestId = req.headers["x-request-id"]?.toString().slice(0, 128) || randomUUID();
    const abort = new AbortController();
    let events: AsyncGenerator<OutputEvent> | null = null;
    let pid = 0;
    let reattach = false;
    try {
      const url = new URL(req.url ?? "/", "http://x");
      // The key first: nobody learns more than 401 without it.
      this.authorize(req, url.searchParams.get("access_token") ?? undefined);
      const q = parseWith(PtyConnectQuerySchema, Object.fromEntries(url.searchParams), "query");
      await this.pty.check(id);
      reattach = q.pid !== undefined;
      pid = q.pid ?? (await this.pty.start(id, { cols: q.cols, rows: q.rows, env: {}, ...(q.cmd ? { cmd: q.cmd } : {}), ...(q.cwd ? { cwd: q.cwd } : {}), ...(q.user ? { user: q.user } : {}) })).pid;
      events = this.pty.attach(id, pid, !reattach || q.replay, abort.signal);
      // The first event (start) comes after the process was found: a wrong pid is a 404 here.
      await events.next();
    } catch (err) {
      await events?.return(undefined);
      return refuse(socket, toApiError(err), requestId);
    }
    socket.on("error", () => abort.abort());
    this.wss.handleUpgrade(req, socket, head, (ws) => void this.serve(ws, id, pid, reattach, events, abort, requestId));
  }

  private authorize(req: IncomingMessage, queryToken: string | undefined): void {
    const offered = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
    const fromProtocol = offered.find((p) => p.startsWith(KEY_PROTOCOL))?.slice(KEY_PROTOCOL.length);
    const header = req.headers.authorization;
    const given = header?.startsWith("Bearer ") ? header.slice(7) : (fromProtocol ?? queryToken ?? "");
    const a = Buffer.from(given);
    const b = Buffer.from(this.apiKey);
    if (a.length !== b.length || !timingSafeEqual(a, b)) {
      throw new ApiError("unauthorized", "missing or wrong API key: send `Authorization: Bearer <key>`, the subprotocol `stasis.key.<key>` or ?access_token=");
    }
  }

  private async serve(ws: WebSocket, id: string, pid: number, reattach: boolean, events: AsyncGenerator<OutputEvent>, abort: AbortController, requestId: string): Promise<void> {
    const send = (m: PtyServerMessage) => ws.send(JSON.stringify(m));
    let pendingInput = 0;
    let inputChain = Promise.resolve();
    ws.on("close", () => abort.abort());
    ws.on("error", () => abort.abort());
    ws.on("message", (data: RawData, isBinary: boolean) => {
      const bytes = toBuffer(data);
      if (isBinary) {
        pendingInput += bytes.length;
        if (pendingInput > MAX_PENDING_INPUT_BYTES) return ws.close(1008, "input flood");
        // In order, one at a time: keystrokes must arrive as typed.
        inputChain = inputChain.then(async () => {
          try {
            await this.pty.input(id, pid, bytes);
          } catch (err) {
            if (ws.readyState === ws.OPEN) send({ type: "error", ...errorBody(toApiError(err), requestId) });
          } finally {
            pendingInput -= bytes.length;
          }
        });
        return;
      }
      let message: unknown;
      try {
        message = JSON.parse(bytes.toString("utf8"));
      } catch {
        message = null;
      }
      const parsed = PtyClientMessageSchema.safeParse(message);
      if (!parsed.success) return send({ type: "error", ...errorBody(new ApiError("invalid_request", "text frames are JSON control messages: {type: 'resize', cols, rows}"), requestId) });
      const { cols, rows } = parsed.data;
      inputChain = inputChain.then(() => this.pty.resize(id, pid, cols, rows).catch((err: unknown) => send({ type: "error", ...errorBody(toApiError(err), requestId) })));
    });

    send({ type: "started", pid, replayed: reattach });
    try {
      for await (const e of events) {
        if (ws.readyState !== ws.OPEN) break;
        if (e.kind === "data") {
          ws.send(e.data, { binary: true });
          while (ws.bufferedAmount > HIGH_WATER_BYTES && ws.readyState === ws.OPEN) await new Promise((r) => setTimeout(r, 10));
        } else if (e.kind === "exit") {
          send({ type: "exit", exitCode: e.exit.exitCode, signal: e.exit.signal });
          ws.close(1000, "exited");
          return;
        }
      }
    } catch (err) {
      const apiError = toApiError(err);
      if (ws.readyState !== ws.OPEN) return;
      // Hibernated under the client: the terminal goes on when the sandbox wakes, which a reconnect does.
      if (apiError.code === "sandbox_not_running" || this.pty.hibernating(id)) return ws.close(PTY_CLOSE_STANDBY, "sandbox hibernated; reconnect to wake it");
      if (apiError.code === "internal") this.log.error({ err, requestId }, "terminal stream failed");
      send({ type: "error", ...errorBody(apiError, requestId) });
      ws.close(1011, apiError.code);
    } finally {
      await events.return(undefined);
    }
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** An HTTP error reply on the raw socket, before any upgrade. */
function refuse(socket: Duplex, err: ApiError, requestId: string): void {
  const body = JSON.stringify(errorBody(err, requestId));
  socket.end(
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ""}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
  );
}
