import type { Socket } from "node:net";
import { Agent, request as httpRequest, type IncomingMessage } from "node:http";
import { ApiError } from "../../errors/api-error.js";

/** The code interpreter's port inside the sandbox (E2B's, so its SDK reaches the same server). */
export const CODE_PORT = 49999;
/**
 * The longest wait for a reply's head. A run's head comes with its first line or within 50 ms; creating or
 * restarting a context starts its kernel first (a few seconds, more on a loaded host; the server gives a
 * start 60 s). A sandbox without an interpreter refuses the connection at once instead.
 */
const REPLY_HEAD_TIMEOUT_MS = 90_000;
/** Plain (non-streamed) replies: contexts, errors. */
const MAX_REPLY_BYTES = 4 * 1024 * 1024;

export interface InterpreterReply {
  status: number;
  body: IncomingMessage;
}

/**
 * How long a kept-alive connection waits for the next request. An agent's runs come seconds apart; an idle
 * one costs a thread of the interpreter's server, and is closed first when the sandbox pauses or
 * hibernates (InboundConnections).
 */
export const KEEP_ALIVE_IDLE_MS = 30_000;
/** How long the rest of a run's reply (after its last line) may take to arrive before the connection is dropped. */
const SETTLE_MS = 1_000;

/**
 * HTTP to the sandboxes' interpreters on kept-alive connections (one pool per sandbox address): a run is
 * then one round trip, without a TCP handshake through gVisor's network stack and a new thread in the
 * server (~3 ms a run). `onIdle` hears of each connection going back to the pool (it is then closed
 * gently, not reset, before a checkpoint).
 */
export class InterpreterClient {
  private readonly agent: Agent;
  private readonly port: number;

  constructor(onIdle: (socket: Socket) => void, options: { port?: number; idleMs?: number } = {}) {
    this.port = options.port ?? CODE_PORT;
    this.agent = new Agent({ keepAlive: true, maxFreeSockets: 4, timeout: options.idleMs ?? KEEP_ALIVE_IDLE_MS });
    this.agent.on("free", onIdle);
  }

  /**
   * One request. A kept connection the server (or a sandbox since gone from the address) had reset is
   * retried once on a fresh one: the request never reached a live server on it.
   */
  request(address: string, method: string, path: string, body: unknown, signal?: AbortSignal, track?: (socket: Socket) => void): Promise<InterpreterReply> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const target = { address, port: this.port, method, path };
    return send(this.agent, target, payload, signal, track).catch((err: unknown) => {
      if (err instanceof StaleConnection) return send(false, target, payload, signal, track);
      throw err;
    });
  }

  /** Closes the pool's idle connections (the daemon stops). */
  close(): void {
    this.agent.destroy();
  }
}

/**
 * After a run's last line: the reply's end (the chunked body's terminator) follows at once, and the
 * connection goes back to the pool; a reply that does not end soon has its connection dropped.
 */
export function settle(res: IncomingMessage): void {
  if (res.readableEnded || res.destroyed) return;
  const timer = setTimeout(() => res.destroy(), SETTLE_MS);
  res.once("end", () => clearTimeout(timer));
  res.once("close", () => clearTimeout(timer));
  res.resume();
}

class StaleConnection extends Error {}

interface Target {
  address: string;
  port: number;
  method: string;
  path: string;
}

function send(agent: Agent | false, target: Target, payload: Buffer | undefined, signal?: AbortSignal, track?: (socket: Socket) => void): Promise<InterpreterReply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: target.address,
      port: target.port,
      method: target.method,
      path: target.path,
      agent,
      headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
      ...(signal ? { signal } : {}),
    });
    if (track) req.once("socket", track);
    const timer = setTimeout(() => req.destroy(Object.assign(new Error("no reply"), { code: "ETIMEDOUT" })), REPLY_HEAD_TIMEOUT_MS);
    req.once("response", (res) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 502, body: res });
    });
    req.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (signal?.aborted) return reject(new ApiError("invalid_request", "the client went away"));
      if (req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE")) return reject(new StaleConnection(err.message));
      if (err.code === "ECONNREFUSED" || err.code === "EHOSTUNREACH") {
        return reject(new ApiError("code_interpreter_unavailable", "nothing listens on the code interpreter's port 49999 in this sandbox: create it from the code-interpreter template"));
      }
      reject(new ApiError("code_interpreter_failed", `the sandbox's code interpreter did not answer (${err.code ?? err.message})`));
    });
    req.end(payload);
  });
}

/** Reads a whole reply, bounded: a bigger one is the interpreter's fault, not the daemon's problem. */
export async function readBounded(res: IncomingMessage, limit = MAX_REPLY_BYTES): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.destroy();
      throw new ApiError("code_interpreter_failed", `the code interpreter's reply exceeded ${limit} bytes`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString("utf8");
}

/** A non-2xx reply as the API's error: 404 is an unknown context, 400 a request the interpreter refused. */
export async function replyError(reply: InterpreterReply): Promise<ApiError> {
  const message = (await readBounded(reply.body, 64 * 1024).catch(() => "")).trim().slice(0, 2000);
  if (reply.status === 404) return new ApiError("context_not_found", message || "no such code context");
  if (reply.status === 400) return new ApiError("invalid_request", message || "the code interpreter refused the request");
  return new ApiError("code_interpreter_failed", `the code interpreter answered ${reply.status}${message ? `: ${message}` : ""}`);
}
