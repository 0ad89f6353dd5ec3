import { basename } from "node:path";

export type Fd = 1 | 2;

/** One simple command of a script and when it runs: always (`;`), after success (`&&`) or failure (`||`). */
export interface Statement {
  argv: string[];
  when: "always" | "ok" | "fail";
}

/** A process of the fake sandbox, as a checkpoint keeps it (plain JSON). */
export interface ProcessState {
  pid: number;
  cmd: string[];
  tag: string | null;
  cwd: string;
  user: string;
  startedAtMs: number;
  running: boolean;
  exitCode: number | null;
  signal: string | null;
  /** Statements left to run once the current wait ends. */
  rest: Statement[];
  lastCode: number;
  /** What it waits for: a sleep's remaining ms (null: forever), or its stdin. */
  wait: { kind: "sleep"; ms: number | null } | { kind: "stdin" } | null;
  stdin: boolean;
  /** The last output, base64 per read, bounded like the real agent's 1 MiB ring. */
  ring: { fd: Fd; data: string }[];
  ringBytes: number;
}

/** Everything the fake sandbox holds in "memory": what a checkpoint saves and a restore brings back. */
export interface ShellMemory {
  format: "stasis-fake-memory/1";
  /** A number programs change (`incr`) and read (`count`): state that must survive pause, hibernate and fork. */
  counter: number;
  nextPid: number;
  processes: ProcessState[];
}

export interface ShellEvents {
  out(pid: number, fd: Fd, data: Buffer): void;
  exit(pid: number, code: number, signal: string | null): void;
  /** A command brought the whole sandbox down (the fake's out-of-memory kill). */
  crash(reason: string): void;
}

export function emptyMemory(): ShellMemory {
  return { format: "stasis-fake-memory/1", counter: 0, nextPid: 100, processes: [] };
}

const RING_BYTES = 1024 * 1024;
const KEPT_EXITED = 128;
export const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15, SIGCONT: 18, SIGSTOP: 19 };

/** `a && b; c || d` with '…' and "…" quoting: enough shell for tests. */
export function parseScript(script: string): Statement[] {
  const statements: Statement[] = [];
  let argv: string[] = [];
  let when: Statement["when"] = "always";
  const flush = (next: Statement["when"]) => {
    if (argv.length > 0) statements.push({ argv, when });
    argv = [];
    when = next;
  };
  for (const m of script.matchAll(/'([^']*)'|"([^"]*)"|(&&|\|\||;|\n)|([^\s;&|'"]+)/g)) {
    if (m[3] !== undefined) flush(m[3] === "&&" ? "ok" : m[3] === "||" ? "fail" : "always");
    else argv.push(m[1] ?? m[2] ?? m[4] ?? "");
  }
  flush("always");
  return statements;
}

/**
 * The fake sandbox's processes and a tiny command interpreter: `true`, `false`, `exit N`, `echo …`,
 * `sleep N|infinity`, `cat` (echoes its stdin), `incr` / `count` (the memory's counter) and `oom` (kills
 * the sandbox). Frozen, nothing runs: sleeps stop counting until thawed.
 */
export class FakeShell {
  private readonly timers = new Map<number, { timer: NodeJS.Timeout; deadline: number }>();
  private frozen = false;
  private stopped = false;

  constructor(
    readonly memory: ShellMemory,
    private readonly events: ShellEvents,
  ) {}

  /** Starts the clocks of sleeping processes (after a boot or a restore). */
  start(): void {
    for (const p of this.memory.processes) if (p.running && p.wait?.kind === "sleep") this.schedule(p);
  }

  process(pid: number): ProcessState | undefined {
    return this.memory.processes.find((p) => p.pid === pid);
  }

  spawn(args: { cmd: string[]; tag: string | null; cwd: string; user: string; stdin: boolean }): ProcessState {
    const [first, flag, script] = args.cmd;
    const shell = (first === "/bin/sh" || first === "sh") && flag === "-c" && typeof script === "string";
    const p: ProcessState = {
      pid: this.memory.nextPid++,
      ...args,
      startedAtMs: Date.now(),
      running: true,
      exitCode: null,
      signal: null,
      rest: shell ? parseScript(script) : [{ argv: args.cmd, when: "always" }],
      lastCode: 0,
      wait: null,
      ring: [],
      ringBytes: 0,
    };
    this.memory.processes.push(p);
    const exited = this.memory.processes.filter((x) => !x.running);
    if (exited.length > KEPT_EXITED) this.memory.processes = this.memory.processes.filter((x) => x.running || exited.indexOf(x) >= exited.length - KEPT_EXITED);
    return p;
  }

  /** Runs the process's statements until it waits or ends. */
  run(p: ProcessState): void {
    while (p.running && !p.wait && !this.frozen && !this.stopped) {
      const st = p.rest.shift();
      if (!st) return this.finish(p, p.lastCode, null);
      if ((st.when === "ok" && p.lastCode !== 0) || (st.when === "fail" && p.lastCode === 0)) continue;
      const code = this.command(p, st.argv);
      if (code !== null) p.lastCode = code;
    }
  }

  signal(pid: number, name: string): boolean {
    const p = this.process(pid);
    if (!p?.running) return false;
    const n = SIGNALS[name];
    if (n !== undefined && name !== "SIGCONT" && name !== "SIGSTOP") this.finish(p, 128 + n, name);
    return true;
  }

  stdin(pid: number, data: Buffer, eof: boolean): "ok" | "no_such_process" | "no_stdin" {
    const p = this.process(pid);
    if (!p?.running) return "no_such_process";
    if (!p.stdin) return "no_stdin";
    if (p.wait?.kind === "stdin") {
      if (data.length > 0) this.out(p, 1, data);
      if (eof) {
        p.wait = null;
        p.lastCode = 0;
        this.run(p);
      }
    }
    return "ok";
  }

  freeze(): void {
    this.frozen = true;
    const now = Date.now();
    for (const [pid, t] of this.timers) {
      clearTimeout(t.timer);
      const p = this.process(pid);
      if (p?.wait?.kind === "sleep") p.wait.ms = Math.max(0, t.deadline - now);
    }
    this.timers.clear();
  }

  thaw(): void {
    this.frozen = false;
    this.start();
  }

  /** The memory as a checkpoint writes it (sleeps keep what they have left). */
  snapshot(): ShellMemory {
    const now = Date.now();
    for (const [pid, t] of this.timers) {
      const p = this.process(pid);
      if (p?.wait?.kind === "sleep") p.wait.ms = Math.max(0, t.deadline - now);
    }
    return structuredClone(this.memory);
  }

  /** The sandbox is gone: nothing runs any more. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
  }

  /** Runs one command; null when the process now waits or has ended. */
  private command(p: ProcessState, argv: string[]): number | null {
    const [cmd = "", ...args] = argv;
    const text = (s: string) => Buffer.from(s);
    switch (basename(cmd)) {
      case "true":
      case ":":
        return 0;
      case "false":
        return 1;
      case "exit":
        this.finish(p, (Number.parseInt(args[0] ?? String(p.lastCode), 10) || 0) & 255, null);
        return null;
      case "echo":
        this.out(p, 1, text(`${args.join(" ")}\n`));
        return 0;
      case "incr":
        this.memory.counter++;
        this.out(p, 1, text(`${this.memory.counter}\n`));
        return 0;
      case "count":
        this.out(p, 1, text(`${this.memory.counter}\n`));
        return 0;
      case "sleep": {
        const seconds = args[0] === "infinity" ? null : Number(args[0]);
        if (seconds !== null && !(seconds >= 0)) {
          this.out(p, 2, text(`sleep: invalid time interval '${args[0] ?? ""}'\n`));
          return 1;
        }
        p.wait = { kind: "sleep", ms: seconds === null ? null : seconds * 1000 };
        this.schedule(p);
        return null;
      }
      case "cat":
        if (!p.stdin) return 0;
        p.wait = { kind: "stdin" };
        return null;
      case "oom":
        this.out(p, 1, text("allocating\n"));
        this.events.crash("killed by SIGKILL (code 137)");
        return null;
      default:
        this.out(p, 2, text(`sh: 1: ${cmd}: not found\n`));
        return 127;
    }
  }

  private schedule(p: ProcessState): void {
    if (this.frozen || this.stopped || p.wait?.kind !== "sleep" || p.wait.ms === null) return;
    const ms = p.wait.ms;
    const timer = setTimeout(() => {
      this.timers.delete(p.pid);
      p.wait = null;
      p.lastCode = 0;
      this.run(p);
    }, ms);
    timer.unref();
    this.timers.set(p.pid, { timer, deadline: Date.now() + ms });
  }

  private out(p: ProcessState, fd: Fd, data: Buffer): void {
    p.ring.push({ fd, data: data.toString("base64") });
    p.ringBytes += data.length;
    while (p.ringBytes > RING_BYTES && p.ring.length > 1) p.ringBytes -= Buffer.from(p.ring.shift()!.data, "base64").length;
    this.events.out(p.pid, fd, data);
  }

  private finish(p: ProcessState, code: number, signal: string | null): void {
    if (!p.running) return;
    const t = this.timers.get(p.pid);
    if (t) clearTimeout(t.timer);
    this.timers.delete(p.pid);
    p.running = false;
    p.exitCode = code;
    p.signal = signal;
    p.wait = null;
    p.rest = [];
    this.events.exit(p.pid, code, signal);
  }
}
