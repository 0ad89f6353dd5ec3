import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { ErrorCode } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import type { AgentChannel } from "../runtime/driver.js";
import { LineSplitter } from "../runtime/line-splitter.js";

export const MAX_LINE_BYTES = 4 * 1024 * 1024;

export type ProcessEvent =
  | { ev: "out"; pid: number; fd: 1 | 2; data: Buffer }
  | { ev: "exit"; pid: number; code: number; signal: string | null };

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; op: string };

/** Maps the agent's error codes onto the API's registry. */
const agentErrorCodes: Record<string, ErrorCode> = {
  invalid_argument: "invalid_request",
  not_found: "file_not_found",
  already_exists: "file_exists",
  permission_denied: "permission_denied",
  not_a_directory: "not_a_directory",
  is_a_directory: "is_a_directory",
  not_empty: "directory_not_empty",
  no_such_process: "process_not_found",
  exec_failed: "exec_failed",
  too_large: "payload_too_large",
};

/** How long events for a pid nobody listens to yet are kept (the exec reply can trail its first output). */
const EARLY_EVENT_TTL_MS = 5_000;
/** Bound on early output kept across all pids: the agent is untrusted and could invent pids. */
const EARLY_BYTES_MAX = 8 * 1024 * 1024;

/**
 * The daemon's end of one sandbox's agent channel: matches replies to requests by id, routes process
 * events to listeners by pid, and treats everything the agent says as untrusted (size-capped, parsed
 * defensively; a bad line is logged and dropped).
 */
export class AgentClient extends EventEmitter {
  /** Random start: replies a previous daemon left unread in the pipe can never match our requests. */
  private nextId = 1 + Math.floor(Math.random() * 2 ** 30);
  private readonly pending = new Map<number, Pending>();
  private readonly processListeners = new Map<number, Set<(e: ProcessEvent) => void>>();
  private readonly early = new Map<number, { at: number; events: ProcessEvent[] }>();
  private earlyBytes = 0;
  private closedReason: string | null = null;
  private helloWaiters: ((version: string) => void)[] = [];
  version: string | null = null;

  constructor(
    private readonly channel: AgentChannel,
    private readonly log: Logger,
  ) {
    super();
    // One `closed` listener per open stream on this sandbox: there can be many.
    this.setMaxListeners(0);
    const splitter = new LineSplitter(MAX_LINE_BYTES, (line) => this.onLine(line), (bytes) =>
      this.log.warn({ bytes }, "agent sent an over-long line; dropped"),
    );
    channel.output.on("data", (chunk: Buffer) => splitter.push(chunk));
    channel.output.on("end", () => this.close("agent channel closed"));
    channel.output.on("error", (err) => this.close(`agent channel error: ${err.message}`));
    channel.input.on("error", (err) => this.close(`agent channel error: ${err.message}`));
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Resolves with the agent's version once it has said hello (or answered a ping). */
  waitReady(timeoutMs: number): Promise<string> {
    if (this.version) return Promise.resolve(this.version);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ApiError("sandbox_failed", `agent did not start within ${timeoutMs} ms`)), timeoutMs);
      this.helloWaiters.push((v) => {
        clearTimeout(timer);
        resolve(v);
      });
      // A restarted daemon reattaching to a running agent gets no hello: ask.
      this.request<{ version: string }>("ping", {}, timeoutMs)
        .then((r) => this.onHello(r.version))
        .catch(() => {});
    });
  }

  request<T>(op: string, args: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    if (this.closedReason) return Promise.reject(new ApiError("sandbox_failed", this.closedReason));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError("agent_timeout", `sandbox agent did not answer '${op}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, op });
      this.write({ id, op, ...args });
    });
  }

  /** Fire-and-forget message (flow-control acks). */
  send(op: string, args: Record<string, unknown>): void {
    if (!this.closedReason) this.write({ op, ...args });
  }

  /** Listens to a process's events; events that arrived before the listener are replayed first. */
  subscribe(pid: number, listener: (e: ProcessEvent) => void): () => void {
    let set = this.processListeners.get(pid);
    if (!set) this.processListeners.set(pid, (set = new Set()));
    set.add(listener);
    const early = this.early.get(pid);
    if (early) {
      this.dropEarly(pid);
      for (const e of early.events) listener(e);
    }
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.processListeners.get(pid) === set) this.processListeners.delete(pid);
    };
  }

  /** Resolves once no request is awaiting a reply, or after timeoutMs (a checkpoint is best taken between requests). */
  async settled(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.pending.size > 0 && !this.closed && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  }

  /** Resolves once the channel has closed (its writer gone and everything it wrote read), or after timeoutMs. */
  async drained(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.once("closed", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(reason: string): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ApiError("sandbox_failed", `sandbox stopped while '${p.op}' was in flight: ${reason}`));
      this.pending.delete(id);
    }
    this.channel.input.destroy();
    this.channel.output.destroy();
    this.emit("closed", reason);
  }

  private write(message: Record<string, unknown>): void {
    this.channel.input.write(`${JSON.stringify(message)}\n`);
  }

  private onHello(version: string): void {
    this.version = version;
    const waiters = this.helloWaiters;
    this.helloWaiters = [];
    for (const w of waiters) w(version);
  }

  private onLine(line: Buffer): void {
    let msg: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line.toString("utf8"));
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      msg = parsed as Record<string, unknown>;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, bytes: line.length }, "agent sent an unparsable line; dropped");
      return;
    }
    if (typeof msg.id === "number") return this.onReply(msg.id, msg);
    switch (msg.ev) {
      case "hello":
        return this.onHello(typeof msg.version === "string" ? msg.version : "unknown");
      case "out":
        if (typeof msg.pid === "number" && (msg.fd === 1 || msg.fd === 2) && typeof msg.data === "string") {
          return this.dispatch({ ev: "out", pid: msg.pid, fd: msg.fd, data: Buffer.from(msg.data, "base64") });
        }
        break;
      case "exit":
        if (typeof msg.pid === "number" && typeof msg.code === "number") {
          return this.dispatch({ ev: "exit", pid: msg.pid, code: msg.code, signal: typeof msg.signal === "string" ? msg.signal : null });
        }
        break;
    }
    this.log.debug({ ev: msg.ev }, "agent sent an unknown or malformed event; ignored");
  }

  private onReply(id: number, msg: Record<string, unknown>): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (msg.ok === true) return p.resolve(msg.result ?? {});
    const error = (typeof msg.error === "object" && msg.error !== null ? msg.error : {}) as { code?: unknown; message?: unknown };
    const code = typeof error.code === "string" ? (agentErrorCodes[error.code] ?? "internal") : "internal";
    const message = typeof error.message === "string" ? error.message.slice(0, 4096) : "agent error";
    p.reject(new ApiError(code, message));
  }

  private dispatch(event: ProcessEvent): void {
    const set = this.processListeners.get(event.pid);
    if (set && set.size > 0) {
      for (const l of [...set]) l(event);
      return;
    }
    const now = Date.now();
    for (const [pid, e] of this.early) if (now - e.at > EARLY_EVENT_TTL_MS) this.dropEarly(pid);
    const size = event.ev === "out" ? event.data.length : 0;
    // Output beyond the bound is dropped; an exit is always kept, so no waiter is left hanging.
    if (event.ev === "out" && this.earlyBytes + size > EARLY_BYTES_MAX) return;
    const entry = this.early.get(event.pid) ?? { at: now, events: [] };
    entry.events.push(event);
    this.earlyBytes += size;
    this.early.set(event.pid, entry);
  }

  private dropEarly(pid: number): void {
    const entry = this.early.get(pid);
    if (!entry) return;
    this.early.delete(pid);
    for (const e of entry.events) if (e.ev === "out") this.earlyBytes -= e.data.length;
  }

  /** How many listeners a process has: attach and detach are sent to the agent for the first and last. */
  subscriberCount(pid: number): number {
    return this.processListeners.get(pid)?.size ?? 0;
  }
}
