import { PassThrough } from "node:stream";
import { LineSplitter } from "../line-splitter.js";
import type { AgentChannel } from "../driver.js";
import { AgentError, FakeFiles } from "./fake-files.js";
import { FakeShell, SIGNALS, type Fd, type ShellMemory } from "./fake-shell.js";

/** Misbehaviours of one fake agent, set when it starts or at any time after. */
export interface AgentFaults {
  /** The agent dies before it says hello or answers anything (the runtime exits). */
  exitBeforeHello?: boolean;
  /** The agent never says hello nor answers anything (hung at start). */
  silent?: boolean;
  /** Ops it never answers (the request stays in flight until the daemon's timeout). */
  hang?: string[];
}


interface Connection {
  toAgent: PassThrough;
  fromAgent: PassThrough;
}

type Message = Record<string, unknown>;
type Handled = { result: Message; then?: () => void };

const MAX_LINE_BYTES = 4 * 1024 * 1024;

/**
 * The guest agent of a fake sandbox, speaking protocol version 1 over in-memory streams: one JSON object
 * a line, hello on boot, replies by id, `out`/`exit` events for subscribed processes. Frozen, it reads and
 * answers nothing (requests wait, as in a frozen cgroup) until thawed. The channel is the daemon's to open
 * and close; the agent outlives it, like the real one behind its FIFOs.
 */
export class FakeAgent {
  readonly shell: FakeShell;
  private readonly files = new FakeFiles();
  /** Ops it never answers. */
  readonly hung = new Set<string>();
  private conn: Connection | null = null;
  private frozen = false;
  /** Answers nothing at all. */
  silent: boolean;
  private readonly inbox: { conn: Connection; line: Buffer }[] = [];
  private readonly subscribed = new Set<number>();
  private readonly startedAt = Date.now();
  /** Requests answered, by op (what reached the agent). */
  readonly answered = new Map<string, number>();

  constructor(memory: ShellMemory, onCrash: (reason: string) => void, faults: AgentFaults = {}) {
    for (const op of faults.hang ?? []) this.hung.add(op);
    this.silent = (faults.silent ?? false) || (faults.exitBeforeHello ?? false);
    this.shell = new FakeShell(memory, {
      out: (pid, fd, data) => this.event(pid, { ev: "out", pid, fd, data: data.toString("base64") }),
      exit: (pid, code, signal) => this.event(pid, { ev: "exit", pid, code, signal }),
      crash: onCrash,
    });
    this.shell.start();
  }

  get counter(): number {
    return this.shell.memory.counter;
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  /** A new channel (a boot, a restore, or a restarted daemon reopening the pipes); the previous one goes quiet. */
  connect(): AgentChannel {
    const conn: Connection = { toAgent: new PassThrough(), fromAgent: new PassThrough() };
    this.conn = conn;
    const splitter = new LineSplitter(MAX_LINE_BYTES, (line) => this.received(conn, line), () => {});
    conn.toAgent.on("data", (chunk: Buffer) => {
      if (this.conn === conn) splitter.push(chunk);
    });
    // The daemon closed its end: the agent keeps running with nobody listening.
    conn.toAgent.on("close", () => {
      if (this.conn === conn) this.conn = null;
    });
    return { input: conn.toAgent, output: conn.fromAgent };
  }

  /** The daemon on the other end died: nothing more reaches it, and what it wrote is never read. */
  cut(): void {
    this.conn = null;
  }

  hello(): void {
    if (!this.silent) this.write({ ev: "hello", version: "fake", protocol: 1 });
  }

  /** The sandbox stopped: the daemon reads to the end of what was written, then EOF. */
  end(): void {
    this.shell.stop();
    this.conn?.fromAgent.end();
    this.conn = null;
  }

  freeze(): void {
    this.frozen = true;
    this.shell.freeze();
  }

  thaw(): void {
    this.frozen = false;
    this.shell.thaw();
    while (!this.frozen && this.inbox.length > 0) {
      const { conn, line } = this.inbox.shift()!;
      if (conn === this.conn) this.handle(line);
    }
  }

  private received(conn: Connection, line: Buffer): void {
    if (this.frozen) this.inbox.push({ conn, line });
    else this.handle(line);
  }

  private write(message: Message): void {
    const out = this.conn?.fromAgent;
    if (out && out.writable) out.write(`${JSON.stringify(message)}\n`);
  }

  private event(pid: number, message: Message): void {
    // An exit is sent to a subscribed process whatever its credit; the fake never runs out of credit.
    if (this.subscribed.has(pid)) this.write(message);
  }

  private handle(line: Buffer): void {
    let msg: Message;
    try {
      const parsed: unknown = JSON.parse(line.toString("utf8"));
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return;
      msg = parsed as Message;
    } catch {
      return;
    }
    const op = msg.op;
    if (op === "ack") return;
    const id = msg.id;
    if (typeof id !== "number") return;
    if (typeof op !== "string") return this.write({ id, ok: false, error: { code: "invalid_argument", message: "op must be a string" } });
    if (this.silent || this.hung.has(op)) return;
    this.answered.set(op, (this.answered.get(op) ?? 0) + 1);
    try {
      const handled = this.dispatch(op, msg);
      this.write({ id, ok: true, result: handled.result });
      handled.then?.();
    } catch (err) {
      const e = err instanceof AgentError ? err : new AgentError("io_error", (err as Error).message);
      this.write({ id, ok: false, error: { code: e.code, message: e.message } });
    }
  }

  private dispatch(op: string, msg: Message): Handled {
    switch (op) {
      case "ping":
        return { result: { version: "fake", protocol: 1, uptimeMs: Date.now() - this.startedAt } };
      case "prewarm":
        optionalRecord(msg, "env");
        return { result: {} };
      case "stats":
        return { result: { rssKiB: 1024, goroutines: 4, processes: this.shell.memory.processes.filter((p) => p.running).length } };
      case "exec":
        return this.exec(msg);
      case "ps":
        return {
          result: {
            processes: this.shell.memory.processes.map((p) => ({ pid: p.pid, cmd: p.cmd, tag: p.tag, cwd: p.cwd, user: p.user, startedAtMs: p.startedAtMs, running: p.running, exitCode: p.exitCode, signal: p.signal })),
          },
        };
      case "signal": {
        const pid = int(msg, "pid");
        const name = signalName(msg.signal);
        if (!this.shell.signal(pid, name)) throw new AgentError("no_such_process", `no running process ${pid}`);
        return { result: {} };
      }
      case "attach":
        return this.attach(msg);
      case "detach":
        this.subscribed.delete(int(msg, "pid"));
        return { result: {} };
      case "stdin": {
        const pid = int(msg, "pid");
        const data = typeof msg.data === "string" ? Buffer.from(msg.data, "base64") : Buffer.alloc(0);
        const outcome = this.shell.stdin(pid, data, msg.eof === true);
        if (outcome === "no_such_process") throw new AgentError("no_such_process", `no running process ${pid}`);
        if (outcome === "no_stdin") throw new AgentError("invalid_argument", "stdin was not requested");
        return { result: {} };
      }
      default: {
        const result = this.files.handle(op, msg);
        if (!result) throw new AgentError("unknown_op", `unknown op '${op}'`);
        return { result };
      }
    }
  }

  private exec(msg: Message): Handled {
    const cmd = msg.cmd;
    if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((c): c is string => typeof c === "string")) throw new AgentError("invalid_argument", "cmd must be a non-empty array of strings");
    optionalRecord(msg, "env");
    const cwd = typeof msg.cwd === "string" ? msg.cwd : "/root";
    if (!cwd.startsWith("/")) throw new AgentError("invalid_argument", "cwd must be absolute");
    const user = typeof msg.user === "string" || typeof msg.user === "number" ? String(msg.user) : "root";
    const p = this.shell.spawn({ cmd, tag: typeof msg.tag === "string" ? msg.tag : null, cwd, user, stdin: msg.stdin === true });
    if (msg.subscribe === true) this.subscribed.add(p.pid);
    // The reply comes before any event of the new pid.
    return { result: { pid: p.pid }, then: () => this.shell.run(p) };
  }

  private attach(msg: Message): Handled {
    const pid = int(msg, "pid");
    const p = this.shell.process(pid);
    if (!p) throw new AgentError("no_such_process", `no process ${pid}`);
    this.subscribed.add(pid);
    return {
      result: { pid, running: p.running },
      then: () => {
        if (msg.replay === true) for (const r of p.ring) this.write({ ev: "out", pid, fd: r.fd satisfies Fd, data: r.data });
        if (!p.running) this.write({ ev: "exit", pid, code: p.exitCode ?? 0, signal: p.signal });
      },
    };
  }
}

function int(msg: Message, key: string): number {
  const v = msg[key];
  if (typeof v !== "number" || !Number.isInteger(v)) throw new AgentError("invalid_argument", `${key} must be an integer`);
  return v;
}

function optionalRecord(msg: Message, key: string): void {
  const v = msg[key];
  if (v !== undefined && (typeof v !== "object" || v === null || Array.isArray(v))) throw new AgentError("invalid_argument", `${key} must be an object`);
}

function signalName(value: unknown): string {
  if (typeof value === "number") {
    const name = Object.entries(SIGNALS).find(([, n]) => n === value)?.[0];
    if (name) return name;
  } else if (typeof value === "string") {
    const upper = value.toUpperCase();
    const name = upper.startsWith("SIG") ? upper : `SIG${upper}`;
    if (SIGNALS[name] !== undefined) return name;
  }
  throw new AgentError("invalid_argument", `unknown signal ${String(value)}`);
}
