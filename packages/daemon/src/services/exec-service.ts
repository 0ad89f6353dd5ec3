import type { CommandEvent, CommandParams, CommandResult, ProcessInfo, SignalName } from "@stasis/protocol";
import type { ProcessEvent } from "../agent-client/agent-client.js";
import { PTY_WATCH_PROTOCOL, type ExecRequest, type PsEntry } from "../agent-client/agent-protocol.js";
import { ApiError } from "../errors/api-error.js";
import type { Metrics } from "../observability/metrics.js";
import { failSpan, tracer, within } from "../observability/tracing.js";
import { HIBERNATE_WAITS_FOR_COMMANDS_MS } from "./lifecycle/standby.js";
import type { LiveSandbox, SandboxService } from "./sandbox-service.js";

/** Credit the agent may send ahead of what a client has consumed (per process). */
const WINDOW_BYTES = 1024 * 1024;
const FOREGROUND_TIMEOUT_MS = 60_000;
/** After a command's deadline and its kill: how long its exit may take before the request ends without it. */
const KILL_GRACE_MS = 2_000;

/** Runs commands and manages processes through a sandbox's agent. */
export class ExecService {
  constructor(
    private readonly sandboxes: SandboxService,
    private readonly metrics: Metrics,
    private readonly maxBufferedOutputBytes: number,
  ) {}

  /** Runs to completion and returns buffered output (bounded; `truncated` says when some was dropped). */
  async run(id: string, params: CommandParams, signal?: AbortSignal): Promise<CommandResult> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    let pid = 0;
    let exit: Extract<CommandEvent, { type: "exit" }> | null = null;
    for await (const event of this.streamRaw(id, params, "run", signal)) {
      if (event.kind === "start") pid = event.pid;
      else if (event.kind === "data") {
        if (kept + event.data.length > this.maxBufferedOutputBytes) truncated = true;
        else {
          kept += event.data.length;
          (event.fd === 1 ? out : err).push(event.data);
        }
      } else exit = event.exit;
    }
    if (!exit) throw new ApiError("sandbox_failed", "command ended without an exit status");
    return {
      pid,
      exitCode: exit.exitCode,
      signal: exit.signal,
      stdout: Buffer.concat(out).toString("utf8"),
      stderr: Buffer.concat(err).toString("utf8"),
      truncated,
      timedOut: exit.timedOut,
      durationMs: exit.durationMs ?? 0,
    };
  }

  /** Runs a command and yields its events; when the consumer stops early (client gone), the process is killed. */
  async *stream(id: string, params: CommandParams, signal?: AbortSignal): AsyncGenerator<CommandEvent> {
    yield* toCommandEvents(this.streamRaw(id, params, "stream", signal));
  }

  /**
   * Runs a command and yields its output as the bytes it wrote. When `leaveRunning` says so at the time, a
   * consumer that stops early only detaches: the process goes on and can be attached to later (E2B's
   * semantics).
   */
  async *streamBytes(id: string, params: CommandParams, options: { signal?: AbortSignal; leaveRunning?: () => boolean } = {}): AsyncGenerator<OutputEvent> {
    yield* this.streamRaw(id, params, "stream", options.signal, options.leaveRunning);
  }

  /** Starts a process that outlives its clients; with `pty`, on a new terminal of that size (stdin = keystrokes). */
  async startBackground(id: string, params: CommandParams, pty?: { cols: number; rows: number }): Promise<{ pid: number }> {
    const live = await this.sandboxes.acquire(id);
    if (pty) requireAgentProtocol(live, PTY_WATCH_PROTOCOL, "terminals");
    this.metrics.commands.inc({ kind: pty ? "terminal" : "background" });
    const { pid } = await live.agent.exec({ ...this.execArgs(live, params), subscribe: false, window: 0, ...(pty ? { pty, stdin: true } : {}) });
    if (params.timeoutMs) {
      setTimeout(() => void live.agent.signal({ pid, signal: "SIGKILL" }).catch(() => {}), params.timeoutMs).unref();
    }
    return { pid };
  }

  /** Re-attaches to a process: its recent output (replay), then live output until it exits. */
  async *attach(id: string, pid: number, replay: boolean, signal?: AbortSignal): AsyncGenerator<CommandEvent> {
    yield* toCommandEvents(this.attachBytes(id, pid, replay, signal));
  }

  /** `attach`, with output as the bytes the process wrote. */
  async *attachBytes(id: string, pid: number, replay: boolean, signal?: AbortSignal): AsyncGenerator<OutputEvent> {
    const live = await this.sandboxes.acquire(id);
    // An attached stream keeps its sandbox awake.
    const release = this.sandboxes.hold(id);
    try {
      yield* this.attachTo(live, id, pid, replay, signal);
    } finally {
      release();
    }
  }

  private async *attachTo(live: LiveSandbox, id: string, pid: number, replay: boolean, signal?: AbortSignal): AsyncGenerator<OutputEvent> {
    const info = await this.getProcess(id, pid);
    yield { kind: "start", pid: info.pid };
    // The agent keeps one subscription per process: the first listener opens it (with the replay), the
    // last one closes it. A listener joining an open subscription sees live output only.
    const first = live.agent.subscriberCount(pid) === 0;
    const events = this.subscribe(live, pid, signal);
    try {
      if (first) await live.agent.attach({ pid, window: WINDOW_BYTES, replay });
      yield* events.iterate();
    } finally {
      events.close();
      if (!events.exited && live.agent.subscriberCount(pid) === 0) await live.agent.detach(pid).catch(() => {});
    }
  }

  async listProcesses(id: string): Promise<ProcessInfo[]> {
    return (await this.processList(id)).processes;
  }

  /** The processes, and whether the agent cut the list (or a command line) to fit its reply's limit. */
  async processList(id: string): Promise<{ processes: ProcessInfo[]; truncated: boolean }> {
    const live = await this.sandboxes.acquire(id);
    const { processes, truncated } = await live.agent.ps();
    return { processes: processes.map(toProcessInfo), truncated: truncated ?? false };
  }

  async getProcess(id: string, pid: number): Promise<ProcessInfo> {
    const found = (await this.listProcesses(id)).find((p) => p.pid === pid);
    if (!found) throw new ApiError("process_not_found", `no process ${pid} in sandbox ${id}`);
    return found;
  }

  /** Whether the process runs on a terminal (its output is the terminal's, not stdout). */
  async isTerminal(id: string, pid: number): Promise<boolean> {
    const live = await this.sandboxes.acquire(id);
    return (await live.agent.ps()).processes.some((p) => p.pid === pid && p.pty === true);
  }

  async writeStdin(id: string, pid: number, data: string | Buffer, eof: boolean): Promise<void> {
    const live = await this.sandboxes.acquire(id);
    await live.agent.stdin(pid, typeof data === "string" ? Buffer.from(data, "utf8") : data, eof);
  }

  async signal(id: string, pid: number, signal: SignalName): Promise<void> {
    const live = await this.sandboxes.acquire(id);
    await live.agent.signal({ pid, signal });
  }

  private execArgs(live: LiveSandbox, params: CommandParams): ExecRequest {
    const cmd = typeof params.cmd === "string" ? ["/bin/sh", "-c", params.cmd] : params.cmd;
    // The template's WORKDIR and USER are the defaults, as in a container started from the image.
    const defaults = this.sandboxes.commandDefaults(live.record.template);
    const cwd = params.cwd ?? defaults.cwd;
    return {
      cmd,
      env: { ...live.record.env, ...params.env },
      ...(cwd ? { cwd } : {}),
      user: params.user ?? defaults.user ?? "root",
      stdin: params.stdin,
      ...(params.tag ? { tag: params.tag } : {}),
    };
  }

  private async *streamRaw(id: string, params: CommandParams, kind: string, signal?: AbortSignal, leaveRunning = () => false): AsyncGenerator<OutputEvent> {
    // A span by hand: a generator cannot run inside startActiveSpan. A wake it needs is its child.
    const span = tracer().startSpan("sandbox.exec", { attributes: { "stasis.sandbox.id": id, "stasis.exec.kind": kind } });
    try {
      const live = await within(span, () => this.sandboxes.acquire(id));
      // A foreground command keeps its sandbox awake (no automatic pause) until it ends, and a hibernation
      // waits for it (within its deadline).
      const timeoutMs = params.timeoutMs ?? FOREGROUND_TIMEOUT_MS;
      const release = this.sandboxes.hold(id, { deadline: timeoutMs > 0 ? Date.now() + timeoutMs : Infinity });
      try {
        for await (const event of this.runForeground(live, params, kind, signal, leaveRunning)) {
          if (event.kind === "start") span.setAttribute("stasis.exec.pid", event.pid);
          else if (event.kind === "exit") span.setAttributes({ "stasis.exec.exit_code": event.exit.exitCode ?? -1, "stasis.exec.timed_out": event.exit.timedOut });
          yield event;
        }
      } finally {
        release();
      }
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  private async *runForeground(live: LiveSandbox, params: CommandParams, kind: string, signal: AbortSignal | undefined, leaveRunning: () => boolean): AsyncGenerator<OutputEvent> {
    this.metrics.commands.inc({ kind });
    const started = performance.now();
    // Output that arrives before this reply is kept by the agent client until we subscribe.
    const { pid } = await live.agent.exec({ ...this.execArgs(live, params), subscribe: true, window: WINDOW_BYTES });
    const events = this.subscribe(live, pid, signal);
    const timeoutMs = params.timeoutMs ?? FOREGROUND_TIMEOUT_MS;
    let timedOut = false;
    let grace: NodeJS.Timeout | null = null;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            void live.agent.signal({ pid, signal: "SIGKILL" }).catch(() => {});
            // The deadline holds even when the agent cannot act on the kill now (its sandbox is paused:
            // the kill reaches the process as it thaws): the request ends as timed out.
            grace = setTimeout(() => events.expire(), KILL_GRACE_MS);
          }, timeoutMs)
        : null;
    try {
      yield { kind: "start", pid };
      for await (const e of events.iterate()) {
        if (e.kind === "exit") {
          e.exit.timedOut = timedOut;
          e.exit.durationMs = Math.round((performance.now() - started) * 10) / 10;
        }
        yield e;
      }
    } finally {
      if (timer) clearTimeout(timer);
      if (grace) clearTimeout(grace);
      events.close();
      // The consumer left before the exit (client disconnected): a foreground command dies with its
      // stream, unless it is to be left running (then it only stops sending output).
      if (!events.exited) {
        if (timedOut || !leaveRunning()) await live.agent.signal({ pid, signal: "SIGKILL" }).catch(() => {});
        // Detach only when nobody else listens: a client may re-attach before this one's cleanup ran.
        else if (live.agent.subscriberCount(pid) === 0) await live.agent.detach(pid).catch(() => {});
      }
    }
  }

  private subscribe(live: LiveSandbox, pid: number, signal?: AbortSignal): ProcessEventQueue {
    return new ProcessEventQueue(live, pid, signal);
  }
}

/** A process's events with its output as raw bytes. */
export type OutputEvent =
  | { kind: "start"; pid: number }
  | { kind: "data"; fd: 1 | 2; data: Buffer }
  | { kind: "exit"; exit: Extract<CommandEvent, { type: "exit" }> };

/**
 * Turns one process's agent events into an async iterator with flow control: credit goes back to the
 * agent only after the consumer has taken a chunk, so a slow client slows the process, never the daemon.
 */
/** A well-behaved agent never sends more than its credit (1 MiB + one read); far beyond means it is not. */
const MAX_QUEUED_BYTES = 4 * WINDOW_BYTES;

class ProcessEventQueue {
  private queue: OutputEvent[] = [];
  private queuedBytes = 0;
  private wake: (() => void) | null = null;
  private done = false;
  private failure: Error | null = null;
  exited = false;
  private readonly unsubscribe: () => void;
  private readonly onAbort = () => this.fail(new ApiError("invalid_request", "stream aborted by the client"));
  private readonly onClosed = (reason: string) =>
    this.fail(
      /hibernated/.test(reason)
        ? new ApiError("sandbox_not_running", `the sandbox was hibernated while process ${this.pid} ran (a hibernation waits ${HIBERNATE_WAITS_FOR_COMMANDS_MS / 1000} s at most); it goes on when the sandbox wakes: attach to it`)
        : new ApiError("sandbox_failed", `sandbox stopped: ${reason}`),
    );

  constructor(
    private readonly live: LiveSandbox,
    private readonly pid: number,
    private readonly signal?: AbortSignal,
  ) {
    this.unsubscribe = live.agent.subscribe(pid, (e) => this.push(e));
    live.agent.once("closed", this.onClosed);
    signal?.addEventListener("abort", this.onAbort);
    if (signal?.aborted) this.onAbort();
    if (live.agent.closed) this.onClosed("agent channel closed");
  }

  private push(e: ProcessEvent): void {
    if (this.done) return;
    if (e.ev === "out") {
      this.queuedBytes += e.data.length;
      if (this.queuedBytes > MAX_QUEUED_BYTES) {
        this.fail(new ApiError("stream_overflow", "the sandbox sent more output than it was granted; stream closed"));
        return;
      }
      this.queue.push({ kind: "data", fd: e.fd, data: e.data });
    } else {
      this.exited = true;
      this.queue.push({
        kind: "exit",
        exit: { type: "exit", exitCode: e.code, signal: e.signal, timedOut: false, durationMs: null },
      });
      this.done = true;
    }
    this.wake?.();
  }

  /** The command's deadline passed and its exit did not come (the sandbox is frozen): it ends as killed. */
  expire(): void {
    if (this.done) return;
    this.exited = true;
    this.queue.push({ kind: "exit", exit: { type: "exit", exitCode: 137, signal: "SIGKILL", timedOut: true, durationMs: null } });
    this.done = true;
    this.wake?.();
  }

  private fail(err: Error): void {
    this.failure = err;
    this.done = true;
    this.wake?.();
  }

  async *iterate(): AsyncGenerator<OutputEvent> {
    for (;;) {
      const next = this.queue.shift();
      if (next) {
        yield next;
        // The consumer came back for more: it has taken this chunk, so return its credit.
        if (next.kind === "data") {
          this.queuedBytes -= next.data.length;
          this.live.agent.ack(this.pid, next.data.length);
        }
        if (next.kind === "exit") return;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.done) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }

  close(): void {
    this.unsubscribe();
    this.live.agent.off("closed", this.onClosed);
    this.signal?.removeEventListener("abort", this.onAbort);
    // Output this consumer will never take: its credit goes back, or another listener of the same
    // process (a re-attach) would find the agent's window used up and wait forever.
    if (this.queuedBytes > 0 && !this.live.agent.closed) {
      this.live.agent.ack(this.pid, this.queuedBytes);
      this.queuedBytes = 0;
    }
  }
}

async function* toCommandEvents(raw: AsyncIterable<OutputEvent>): AsyncGenerator<CommandEvent> {
  // Decoders carry partial UTF-8 sequences across chunk boundaries.
  const decoders = { 1: new TextDecoder("utf-8"), 2: new TextDecoder("utf-8") };
  for await (const e of raw) {
    if (e.kind === "start") {
      yield { type: "start", pid: e.pid };
    } else if (e.kind === "data") {
      const text = decoders[e.fd].decode(e.data, { stream: true });
      if (text) yield { type: e.fd === 1 ? "stdout" : "stderr", data: text };
    } else {
      for (const fd of [1, 2] as const) {
        const rest = decoders[fd].decode();
        if (rest) yield { type: fd === 1 ? "stdout" : "stderr", data: rest };
      }
      yield e.exit;
    }
  }
}

/** Refuses, with a stable code, a feature the sandbox's agent (from an older daemon, kept across hibernation) lacks. */
export function requireAgentProtocol(live: LiveSandbox, protocol: number, feature: string): void {
  const has = live.agent.protocol ?? 1;
  if (has < protocol) {
    throw new ApiError("agent_outdated", `sandbox ${live.record.id} runs agent ${live.agent.version ?? "?"} (protocol ${has}), which has no ${feature} (protocol ${protocol}); it was started by an older daemon: create a new sandbox to use ${feature}`);
  }
}

function toProcessInfo(p: PsEntry): ProcessInfo {
  return {
    pid: p.pid,
    cmd: p.cmd,
    tag: p.tag ?? null,
    cwd: p.cwd ?? null,
    user: p.user ?? null,
    startedAt: new Date(p.startedAtMs).toISOString(),
    running: p.running,
    exitCode: p.exitCode,
    signal: p.signal,
  };
}
