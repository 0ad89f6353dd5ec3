import { spawn } from "node:child_process";

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
