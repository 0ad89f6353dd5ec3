import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

export interface CommandOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a host command with a hard timeout. Runtime CLIs can hang (runsc --platform=kvm spins forever
 * here), so every call to them goes through this.
 */
export function runCommand(
  cmd: string,
  args: string[],
  options: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv; signal?: AbortSignal } = {},
): Promise<CommandOutput> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: options.env ?? process.env });
    let stdout = "";
    let stderr = "";
    const cap = 1024 * 1024;
    child.stdout.on("data", (d: Buffer) => {
      if (stdout.length < cap) stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      if (stderr.length < cap) stderr += d.toString();
    });
    const timer = setTimeout(() => {
      stderr += `\n(timed out after ${options.timeoutMs ?? 30_000} ms)`;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? 30_000);
    // Aborted (the client went away): killed like a timeout.
    const onAbort = () => child.kill("SIGKILL");
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    child.on("error", (err) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      resolve({ code: null, stdout, stderr: `${stderr}${err.message}` });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      resolve({ code, stdout, stderr });
    });
    // A command that exits without reading its input closes the pipe: that is not an error here.
    child.stdin.on("error", () => {});
    child.stdin.end(options.input ?? "");
  });
}

/** Runs a host command that must succeed: a failure throws with its stderr. */
export async function mustRun(cmd: string, args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<void> {
  const out = await runCommand(cmd, args, { timeoutMs: options.timeoutMs ?? 30_000, ...(options.input === undefined ? {} : { input: options.input }) });
  if (out.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${out.stderr.trim() || `exit ${out.code}`}`);
}

/** Whether a process exists (leftovers of a dead daemon are named by its pid). */
export function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * At daemon start: whether something marked with `pid` is a previous daemon's leftover. A dead pid, or our
 * own (a restarted daemon, in a container especially, often gets its predecessor's pid).
 */
export function leftByPreviousDaemon(pid: number): boolean {
  return pid === process.pid || !isAlive(pid);
}

export interface OutlivingCommand {
  /** Gets the wrapper's pid at once, so a restarted daemon can tell whether the command still runs. */
  pidFile: string;
  /** Created only once the command exited 0. */
  doneFile: string;
  /** The command's stdout and stderr. */
  logFile: string;
  timeoutMs: number;
}

/**
 * Runs a command that must finish even if the daemon dies meanwhile (a checkpoint being written): in its
 * own session (a signal to the daemon's group does not reach it), with no pipe to the daemon (a write to
 * a dead daemon's pipe would kill it with SIGPIPE), its output in a file and its success as a file.
 */
export function runOutliving(cmd: string, args: string[], o: OutlivingCommand): Promise<{ code: number | null; output: string }> {
  const script = 'echo $$ >"$1"; done=$2; log=$3; shift 3; "$@" >"$log" 2>&1 && : >"$done"';
  return new Promise((resolve) => {
    const child = spawn("sh", ["-c", script, "sh", o.pidFile, o.doneFile, o.logFile, cmd, ...args], { detached: true, stdio: "ignore" });
    const timer = setTimeout(() => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }, o.timeoutMs);
    const finish = (code: number | null, extra = "") => {
      clearTimeout(timer);
      let output = "";
      try {
        output = readFileSync(o.logFile, "utf8").slice(-64 * 1024);
      } catch {
        // No output written.
      }
      resolve({ code, output: `${output}${extra}` });
    };
    child.on("error", (err) => finish(null, err.message));
    child.on("close", (code, signal) => finish(code, signal ? `(killed by ${signal}${signal === "SIGKILL" ? `, after ${o.timeoutMs} ms?` : ""})` : ""));
  });
}

/** Whether `pid` is alive and its command line mentions `marker` (a pid noted in a file may be reused). */
export function isAliveWith(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker);
  } catch {
    return false;
  }
}
