import { spawn, type StdioOptions } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Milliseconds `fn` took. */
export async function time(fn: () => unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Replaces the child's stdout (e.g. a FIFO's fd for runsc, which needs real pipes). */
  stdout?: number | "pipe" | "ignore";
  timeoutMs?: number;
  cwd?: string;
}

/** Runs a command to its end, capturing its output; a timeout kills it with SIGKILL. Never throws on exit codes. */
export function runProcess(cmd: readonly string[], options: RunOptions = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = ["ignore", options.stdout ?? "pipe", "pipe"];
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio, cwd: options.cwd });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = options.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), options.timeoutMs) : undefined;
    let done = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({ code, signal, stdout, stderr });
    };
    child.once("error", (err) => {
      clearTimeout(timer);
      done = true;
      reject(err);
    });
    child.once("close", finish);
    // A detaching command (`runsc restore --detach`) leaves the sandbox holding our stderr pipe open, so
    // "close" may never come: once the command itself exited, take what its pipes delivered shortly after.
    child.once("exit", (code, signal) => setTimeout(() => finish(code, signal), 50));
  });
}

/** Runs a command and throws with its stderr when it fails. */
export async function mustRun(cmd: readonly string[], options: RunOptions = {}): Promise<ProcessResult> {
  const out = await runProcess(cmd, { timeoutMs: 120_000, ...options });
  if (out.code !== 0) throw new Error(`${cmd.join(" ")}: exit ${out.code ?? out.signal}: ${out.stderr.trim().slice(-1000)}`);
  return out;
}

export type CgroupMode = "v1" | "hybrid" | "v2";

export function cgroupMode(mounts = readFileSync("/proc/self/mounts", "utf8")): CgroupMode {
  if (/^\S+ \/sys\/fs\/cgroup cgroup2 /m.test(mounts)) return "v2";
  if (/^\S+ \/sys\/fs\/cgroup\/unified cgroup2 /m.test(mounts)) return "hybrid";
  return "v1";
}

/** MemAvailable from /proc/meminfo, in bytes. */
export function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** MemAvailable averaged over a few reads (the figure moves with other tenants of the machine). */
export async function steadyMemAvailable(reads = 5, gapMs = 200): Promise<number> {
  let sum = 0;
  for (let i = 0; i < reads; i++) {
    sum += memAvailable();
    if (i < reads - 1) await sleep(gapMs);
  }
  return sum / reads;
}

/** Memory charged to a cgroup (a path such as /stasis/<id>), in bytes; NaN when it cannot be read. */
export function cgroupMemory(path: string): number {
  for (const f of [`/sys/fs/cgroup${path}/memory.current`, `/sys/fs/cgroup/memory${path}/memory.usage_in_bytes`]) {
    try {
      return Number(readFileSync(f, "utf8"));
    } catch {
      // try the other hierarchy
    }
  }
  return NaN;
}

/** CPU time a cgroup has used, in microseconds; NaN when it cannot be read. */
export function cgroupCpuUsec(path: string): number {
  try {
    const m = /^usage_usec (\d+)$/m.exec(readFileSync(`/sys/fs/cgroup${path}/cpu.stat`, "utf8"));
    if (m) return Number(m[1]);
  } catch {
    // cgroup v1 below
  }
  try {
    return Number(readFileSync(`/sys/fs/cgroup/cpuacct${path}/cpuacct.usage`, "utf8").trim()) / 1000;
  } catch {
    return NaN;
  }
}

/** Freezes or thaws a cgroup directly (v1 freezer.state or v2 cgroup.freeze) and spins until it reads back. */
export function freezerWrite(path: string, frozen: boolean): void {
  const v2 = `/sys/fs/cgroup${path}`;
  const v1 = `/sys/fs/cgroup/freezer${path}`;
  const isV2 = existsSync(`${v2}/cgroup.freeze`);
  if (!isV2 && !existsSync(`${v1}/freezer.state`)) throw new Error(`no freezer for cgroup ${path}`);
  if (isV2) writeFileSync(`${v2}/cgroup.freeze`, frozen ? "1" : "0");
  else writeFileSync(`${v1}/freezer.state`, frozen ? "FROZEN" : "THAWED");
  const deadline = Date.now() + 10_000;
  for (;;) {
    const done = isV2
      ? /^frozen 1$/m.test(readFileSync(`${v2}/cgroup.events`, "utf8")) === frozen
      : readFileSync(`${v1}/freezer.state`, "utf8").trim() === (frozen ? "FROZEN" : "THAWED");
    if (done) return;
    if (Date.now() > deadline) throw new Error(`cgroup ${path} did not become ${frozen ? "frozen" : "thawed"} within 10 s`);
  }
}

/** Bytes of disk a path really uses (allocated blocks, not apparent sizes), staying on its filesystem. */
export async function diskUsage(path: string): Promise<number> {
  const out = await runProcess(["du", "-sx", "--block-size=1", path], { timeoutMs: 60_000 });
  return out.code === 0 ? Number(out.stdout.split("\t")[0]) : NaN;
}

/** Total busy and total jiffies of the host's CPUs (from /proc/stat's first line). */
export function hostCpuTicks(): { busy: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** Runs `fn` over `items` with at most `limit` at once; returns results in order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = "code" in err && typeof err.code === "string" ? `[${err.code}] ` : "";
    return `${code}${err.message}`;
  }
  return String(err);
}

/** Pids in a cgroup (v2, or the v1 memory hierarchy); empty when it does not exist. */
export function cgroupPids(path: string): Set<number> {
  for (const f of [`/sys/fs/cgroup${path}/cgroup.procs`, `/sys/fs/cgroup/memory${path}/cgroup.procs`]) {
    try {
      return new Set(readFileSync(f, "utf8").split("\n").filter(Boolean).map(Number));
    } catch {
      // try the other hierarchy
    }
  }
  return new Set();
}

/**
 * Anonymous memory (proportional set size) of the processes whose command line names `id` but that live
 * outside the cgroup `cgroupPath`: for a gVisor sandbox the `runsc run` parent that waits for it. Shared
 * text of the runtime binary is left out (it is paid once, not per sandbox). Bytes.
 */
export function outsideAnonPss(id: string, cgroupPath: string): number {
  const inside = cgroupPids(cgroupPath);
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || inside.has(Number(entry))) continue;
    try {
      if (!readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(id)) continue;
      const m = /^Pss_Anon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${entry}/smaps_rollup`, "utf8"));
      total += m ? Number(m[1]) * 1024 : 0;
    } catch {
      // the process ended meanwhile
    }
  }
  return total;
}
