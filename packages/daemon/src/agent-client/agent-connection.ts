import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { ApiError } from "../errors/api-error.js";
import type { AgentChannel } from "../runtime/driver.js";
import {
  AgentEventSchema,
  describeIssues,
  FRAME_PREFIX_BYTES,
  FRAMES_PROTOCOL,
  MAX_FRAME_HEADER,
  MAX_FRAME_PAYLOAD,
  MAX_LINE_BYTES,
  MAX_PROTOCOL,
  MIN_PROTOCOL,
  ReplySchema,
  resultSchemas,
  type AgentOp,
  type FsEvent,
  type ResultOf,
} from "./agent-protocol.js";
import { apiCodeOf } from "./agent-errors.js";
import { encodeFrame, RESYNC_PADDING } from "./frames.js";
import { EarlyEvents } from "./early-events.js";
import { JunkMeter } from "./junk-meter.js";
import { MessageReader } from "./message-reader.js";

export type ProcessEvent =
  | { ev: "out"; pid: number; fd: 1 | 2; data: Buffer }
  | { ev: "exit"; pid: number; code: number; signal: string | null };

/** A parsed reply, with a frame's payload (the result's data) when it came as one. */
export type Reply<K extends AgentOp> = { result: ResultOf<K>; payload: Buffer | null };
export type CallOptions = { timeoutMs?: number; payload?: Buffer; framed?: boolean };

type Pending = { resolve: (r: { result: unknown; payload: Buffer | null }) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; op: AgentOp };

/**
 * What a resync may drop before the agent's answer: the pipe's capacity (at most 1 MiB) and the agent's
 * queue of 32 messages of at most a frame each. More is a flood, not an agent catching up.
 */
const MAX_RESYNC_DROP = 2 ** 20 + 32 * (FRAME_PREFIX_BYTES + MAX_FRAME_HEADER + MAX_FRAME_PAYLOAD);
/** Every reason the channel gives up on the agent starts so, and the sandbox's failure says it. */
const BROKEN = "agent channel broken";

/**
 * The daemon's end of one sandbox's agent channel: sends requests (JSON lines, or binary frames to an
 * agent of protocol 2), matches replies to requests by id and parses them with the op's schema, routes
 * process events to listeners by pid, and treats everything the agent says as untrusted: sizes are
 * capped, every message is validated, and a stream of garbage closes the channel with the reason.
 */
export class AgentConnection extends EventEmitter {
  /** Random start: replies a previous daemon left unread in the pipe can never match our requests. */
  private nextId = 1 + Math.floor(Math.random() * 2 ** 30);
  private readonly pending = new Map<number, Pending>();
  /** Requests waiting for a resync to finish. */
  private readonly held = new Set<() => void>();
  private readonly processListeners = new Map<number, Set<(e: ProcessEvent) => void>>();
  /** Watch listeners by wid, and events of a watch whose reply was still being handled (bounded). */
  private readonly watchListeners = new Map<number, (e: FsEvent) => void>();
  private readonly earlyWatch = new Map<number, FsEvent[]>();
  private readonly early = new EarlyEvents();
  private closedReason: string | null = null;
  private readyWaiters: { resolve: (version: string) => void; reject: (err: Error) => void }[] = [];
  private readonly junk: JunkMeter;
  private readonly reader: MessageReader;
  /** The agent's version and protocol, from its hello or a ping (null until heard from). */
  version: string | null = null;
  protocol: number | null = null;

  constructor(
    private readonly channel: AgentChannel,
    protected readonly log: Logger,
  ) {
    super();
    // One `closed` listener per open stream on this sandbox: there can be many.
    this.setMaxListeners(0);
    this.junk = new JunkMeter(log, (reason) => this.close(`${BROKEN}: ${reason}; stopped reading it`));
    const reader = (this.reader = new MessageReader(
      MAX_LINE_BYTES,
      {
        message: (body, payload) => this.onMessage(body, payload),
        oversizeLine: (bytes, head) => this.onOversize(bytes, head),
        fatal: (reason) => this.close(`${BROKEN}: ${reason}; stopped reading it`),
        synced: () => this.releaseHeld(),
      },
      MAX_RESYNC_DROP,
    ));
    channel.output.on("data", (chunk: Buffer) => reader.push(chunk));
    channel.output.on("end", () => this.close("agent channel closed"));
    channel.output.on("error", (err) => this.close(`agent channel error: ${err.message}`));
    channel.input.on("error", (err) => this.close(`agent channel error: ${err.message}`));
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Whether requests may travel as binary frames (the agent announced protocol 2 or later). */
  get framed(): boolean {
    return (this.protocol ?? 0) >= FRAMES_PROTOCOL;
  }

  /**
   * Resolves with the agent's version once it has said hello (or answered a ping) with a protocol this
   * daemon speaks; rejects when the protocol is not one of them.
   */
  waitReady(timeoutMs: number): Promise<string> {
    if (this.closedReason) return Promise.reject(new ApiError("sandbox_failed", this.closedReason));
    if (this.version && this.protocol !== null) return Promise.resolve(this.version);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new ApiError("sandbox_failed", `agent did not start within ${timeoutMs} ms`)), timeoutMs);
      this.readyWaiters.push({
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      // A restarted daemon reattaching to a running agent gets no hello: ask.
      this.pingHello({ timeoutMs }).catch(() => {});
    });
  }

  /**
   * After a daemon restart, before anything else is sent: the previous daemon may have died in the middle
   * of a message, either way. The agent gets padding that completes any torn request harmlessly, then a
   * ping; everything the agent wrote before the ping's answer is dropped unread (docs/agent-protocol.md,
   * "Resync after a daemon restart"). The answer also tells the agent's version.
   */
  resync(timeoutMs: number): Promise<string> {
    this.reader.skipUntil(Buffer.from(`{"id":${this.nextId},"ok":`));
    this.channel.input.write(RESYNC_PADDING);
    return this.pingHello({ timeoutMs, resync: true });
  }

  /**
   * Whether the agent has read everything written to it: a ping answered after the rest (behind a resync
   * under way). A checkpoint taken then holds the agent between two messages; one taken otherwise may hold
   * it inside a message whose rest the pipe loses with the runtime, and its restore must resync in full.
   */
  inStep(timeoutMs: number): Promise<boolean> {
    if (this.closedReason) return Promise.resolve(false);
    return this.call("ping", {}, { timeoutMs }).then(
      () => true,
      () => false,
    );
  }

  /** Nothing written is unanswered, held or unsent: what a frozen agent (which answers no ping) can show. */
  get quiet(): boolean {
    return !this.closedReason && !this.reader.resyncing && this.pending.size === 0 && this.held.size === 0 && this.channel.input.writableLength === 0;
  }

  /**
   * The first exchange with an agent restored from a checkpoint, over pipes that are new: what the old ones
   * held unread went with them. Checkpointed in step, the agent can at most have begun a line sent without
   * a reply (an ack), which a newline ends (an empty line is nothing to it); otherwise a full resync, as
   * after a daemon restart, which also drops a message the agent was halfway through writing.
   */
  restored(timeoutMs: number, checkpointedInStep: boolean): Promise<string> {
    if (!checkpointedInStep) return this.resync(timeoutMs);
    this.channel.input.write("\n");
    return this.waitReady(timeoutMs);
  }

  /** A ping whose answer counts as the agent's hello (an agent of protocol 1 leaves `protocol` out). */
  private async pingHello(options: CallOptions & { resync?: boolean }): Promise<string> {
    const { result } = await this.call("ping", {}, options);
    this.onHello(result.version, result.protocol ?? 1);
    return result.version;
  }

  /** Sends a request and resolves with its reply, parsed with the op's schema (a malformed reply is an error). */
  protected call<K extends AgentOp>(op: K, args: object, options: CallOptions & { resync?: boolean } = {}): Promise<Reply<K>> {
    if (this.closedReason) return Promise.reject(new ApiError("sandbox_failed", this.closedReason));
    // During a resync the agent answers requests concurrently, so a reply could come before the resync's
    // and be dropped with what the previous daemon left: requests wait until the stream is in step.
    if (this.reader.resyncing && !options.resync) return this.holdUntilSynced(op, args, options);
    const { timeoutMs = 30_000, payload, framed = payload !== undefined } = options;
    if (framed && !this.framed) return Promise.reject(new ApiError("internal", `'${op}' as a frame needs agent protocol ${FRAMES_PROTOCOL} (agent speaks ${this.protocol ?? "unknown"})`));
    const id = this.nextId++;
    let encoded: (string | Buffer)[];
    try {
      encoded = framed ? encodeFrame({ id, op, ...args }, payload ?? Buffer.alloc(0)) : [`${JSON.stringify({ id, op, ...args })}\n`];
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return new Promise<Reply<K>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError("agent_timeout", `sandbox agent did not answer '${op}' within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = (raw: { result: unknown; payload: Buffer | null }) => {
        const parsed = resultSchemas[op].safeParse(raw.result ?? {});
        if (!parsed.success) {
          reject(new ApiError("sandbox_failed", `the sandbox agent sent a malformed '${op}' reply: ${describeIssues(parsed.error)}`));
          return;
        }
        resolve({ result: parsed.data as ResultOf<K>, payload: raw.payload });
      };
      this.pending.set(id, { resolve: settle, reject, timer, op });
      // Written in one tick: nothing else can come between a frame's parts.
      for (const part of encoded) this.channel.input.write(part);
    });
  }

  private holdUntilSynced<K extends AgentOp>(op: K, args: object, options: CallOptions): Promise<Reply<K>> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.held.delete(release);
        reject(new ApiError("agent_timeout", `sandbox agent did not answer '${op}' within ${timeoutMs} ms (its channel was still resyncing)`));
      }, timeoutMs);
      const release = () => {
        clearTimeout(timer);
        this.call(op, args, options).then(resolve, reject);
      };
      this.held.add(release);
    });
  }

  /** Sends what waited for a resync (or, once the channel is closed, fails it). */
  private releaseHeld(): void {
    const held = [...this.held];
    this.held.clear();
    for (const release of held) release();
  }

  /** Fire-and-forget message (flow-control acks). */
  protected send(op: "ack", args: object): void {
    if (!this.closedReason) this.writeLine({ op, ...args });
  }

  /** Listens to a process's events; events that arrived before the listener are replayed first. */
  subscribe(pid: number, listener: (e: ProcessEvent) => void): () => void {
    let set = this.processListeners.get(pid);
    if (!set) this.processListeners.set(pid, (set = new Set()));
    set.add(listener);
    for (const e of this.early.take(pid)) listener(e);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.processListeners.get(pid) === set) this.processListeners.delete(pid);
    };
  }

  /** Listens to a watch's `fs` events (those that came before, while its reply was handled, first). */
  onWatch(wid: number, listener: (e: FsEvent) => void): () => void {
    this.watchListeners.set(wid, listener);
    const early = this.earlyWatch.get(wid) ?? [];
    this.earlyWatch.delete(wid);
    for (const e of early) listener(e);
    return () => {
      if (this.watchListeners.get(wid) === listener) this.watchListeners.delete(wid);
    };
  }

  private onFsEvent(e: FsEvent, size: number): void {
    const listener = this.watchListeners.get(e.wid);
    if (listener) return listener(e);
    // The watch's reply and first events can share a read; a few are kept for it, the rest is junk.
    const early = this.earlyWatch.get(e.wid) ?? [];
    if (early.length >= 16 || (!this.earlyWatch.has(e.wid) && this.earlyWatch.size >= 16)) return this.junk.unexpected(`fs events for watch ${e.wid}, which nobody listens to`, size);
    early.push(e);
    this.earlyWatch.set(e.wid, early);
  }

  /** How many listeners a process has: attach and detach are sent to the agent for the first and last. */
  subscriberCount(pid: number): number {
    return this.processListeners.get(pid)?.size ?? 0;
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
    this.reader.stop();
    this.releaseHeld();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ApiError("sandbox_failed", `sandbox stopped while '${p.op}' was in flight: ${reason}`));
      this.pending.delete(id);
    }
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.reject(new ApiError("sandbox_failed", reason));
    this.channel.input.destroy();
    this.channel.output.destroy();
    this.emit("closed", reason);
  }

  private writeLine(message: object): void {
    this.channel.input.write(`${JSON.stringify(message)}\n`);
  }

  private onHello(version: string, protocol: number): void {
    if (protocol < MIN_PROTOCOL || protocol > MAX_PROTOCOL) {
      this.version = version;
      this.close(`the sandbox agent ${version} speaks protocol ${protocol}, but this daemon speaks protocols ${MIN_PROTOCOL} to ${MAX_PROTOCOL}`);
      return;
    }
    this.version = version;
    this.protocol = protocol;
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.resolve(version);
  }

  private onMessage(body: Buffer, payload: Buffer | null): void {
    let msg: unknown;
    try {
      msg = JSON.parse(body.toString("utf8"));
    } catch {
      return this.junk.malformed(`unparsable JSON (${body.length} bytes)`, body.length);
    }
    const size = body.length + (payload?.length ?? 0);
    if (typeof msg !== "object" || msg === null || Array.isArray(msg)) return this.junk.malformed("a message that is not a JSON object", size);
    if ("id" in msg) return this.onReply(msg, payload, size);
    if (!("ev" in msg)) return this.junk.malformed("an object that is neither a reply nor an event", size);
    if (msg.ev === "hello" || msg.ev === "out" || msg.ev === "exit" || msg.ev === "fs") return this.onEvent(msg, payload, size);
    // An event kind from a newer agent: not an error, but not free either.
    this.junk.unexpected(`an unknown event '${String(msg.ev).slice(0, 64)}'`, size);
  }

  private onReply(msg: object, payload: Buffer | null, size: number): void {
    const parsed = ReplySchema.safeParse(msg);
    if (!parsed.success) {
      // The request it answers fails now rather than timing out.
      const id = "id" in msg && typeof msg.id === "number" ? msg.id : null;
      const p = id === null ? undefined : this.pending.get(id);
      if (p && id !== null) {
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new ApiError("sandbox_failed", `the sandbox agent sent a malformed '${p.op}' reply: ${describeIssues(parsed.error)}`));
      }
      return this.junk.malformed(`a malformed reply (${describeIssues(parsed.error)})`, size);
    }
    const reply = parsed.data;
    const p = this.pending.get(reply.id);
    // A reply to a request that timed out is rare; a stream of them is a flood.
    if (!p) return this.junk.unexpected(`a reply to no request (id ${reply.id})`, size);
    this.pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.ok) return p.resolve({ result: reply.result, payload });
    p.reject(new ApiError(apiCodeOf(reply.error), reply.error.message.slice(0, 4096)));
  }

  private onEvent(msg: object, payload: Buffer | null, size: number): void {
    const parsed = AgentEventSchema.safeParse(msg);
    if (!parsed.success) return this.junk.malformed(`a malformed event (${describeIssues(parsed.error)})`, size);
    const ev = parsed.data;
    if (ev.ev === "hello") return this.onHello(ev.version, ev.protocol);
    if (ev.ev === "exit") return this.dispatch(ev);
    if (ev.ev === "fs") return this.onFsEvent(ev, size);
    // In a frame, the payload is the output; in a line, base64 `data`.
    const data = payload ?? (ev.data !== undefined ? Buffer.from(ev.data, "base64") : null);
    if (!data) return this.junk.malformed("an out event without data", size);
    this.dispatch({ ev: "out", pid: ev.pid, fd: ev.fd, data });
  }

  /**
   * A line over the limit is dropped unread; when it is a reply, its request fails now with the reason
   * instead of waiting for its timeout. (The agent bounds its replies; this is for one that does not.)
   */
  private onOversize(bytes: number, head: Buffer): void {
    const id = /^\{"id":(\d+)[,}]/.exec(head.toString("latin1"))?.[1];
    const p = id === undefined ? undefined : this.pending.get(Number(id));
    if (p) {
      this.pending.delete(Number(id));
      clearTimeout(p.timer);
      p.reject(new ApiError("reply_too_large", `the sandbox agent's '${p.op}' reply exceeded the ${MAX_LINE_BYTES}-byte message limit (over ${bytes} bytes) and was dropped`));
    }
    this.junk.malformed(`an over-long line (${bytes} bytes so far)`, bytes);
  }

  private dispatch(event: ProcessEvent): void {
    const set = this.processListeners.get(event.pid);
    if (set && set.size > 0) {
      for (const l of [...set]) l(event);
      return;
    }
    const refused = this.early.keep(event);
    if (refused) this.junk.unexpected(refused.reason, refused.bytes);
  }
}
