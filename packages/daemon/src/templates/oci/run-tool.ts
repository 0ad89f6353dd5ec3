// Runs the import's tools (tar, skopeo, umoci, decompressors): no shell, bounded time, stderr kept for errors.
import { spawn } from "node:child_process";
import { LineSplitter } from "../../runtime/line-splitter.js";
import { OciImportError } from "./untrusted-input.js";

const TOOL_TIMEOUT_MS = 60 * 60_000;
const STDERR_TAIL_BYTES = 4096;

export class ToolFailed extends OciImportError {
  constructor(
    message: string,
    readonly stderrTail: string,
  ) {
    super(message);
  }
}

export interface ToolOptions {
  cwd: string;
  signal?: AbortSignal;
  progress: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Keep stderr out of progress (it still goes into errors). */
  quiet?: boolean;
  onStdoutLine?: (line: string) => void;
  /** Sends stdout to this file instead. */
  stdoutFd?: number;
  /** Raw stdout; `kill` stops the tool and fails the run with the given error. */
  onStdout?: (chunk: Buffer, kill: (err: Error) => void) => void;
}
export type RunFn = (cmd: string, args: string[], extra?: Omit<ToolOptions, "cwd" | "signal" | "progress">) => Promise<void>;

const INSTALL_HINT: Record<string, string> = { umoci: "umoci", skopeo: "skopeo", tar: "tar", xz: "xz-utils", zstd: "zstd", bzip2: "bzip2", gzip: "gzip" };

/** Runs a tool without a shell, streaming its output lines to progress; a failure carries the tail of its stderr. */
export function runTool(cmd: string, args: string[], options: ToolOptions): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const { signal, progress } = options;
    if (signal?.aborted) return reject(signal.reason);
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", options.stdoutFd ?? "pipe", "pipe"] });
    let failure: Error | null = null;
    const kill = (err: Error) => {
      failure ??= err;
      child.kill("SIGKILL");
    };
    const onAbort = () => kill(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => kill(new Error(`${cmd} timed out after ${TOOL_TIMEOUT_MS / 60_000} minutes`)), TOOL_TIMEOUT_MS);

    let tail = "";
    const lineOut = (sink: (line: string) => void) =>
      new LineSplitter(64 * 1024, (line) => sink(line.toString("utf8").trimEnd()), () => {});
    const stdoutLines = lineOut(options.onStdoutLine ?? progress);
    const stderrLines = lineOut(options.quiet ? () => {} : progress);
    child.stdout?.on("data", (chunk: Buffer) => (options.onStdout ? options.onStdout(chunk, kill) : stdoutLines.push(chunk)));
    child.stderr?.on("data", (chunk: Buffer) => {
      tail = (tail + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES);
      stderrLines.push(chunk);
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      failure ??= err.code === "ENOENT" ? new Error(`${cmd} is not installed (apt-get install ${INSTALL_HINT[cmd] ?? cmd})`) : err;
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      stdoutLines.push(Buffer.from("\n"));
      stderrLines.push(Buffer.from("\n"));
      if (failure) return reject(failure);
      if (code === 0) return resolvePromise();
      const how = code === null ? `was killed by ${sig}` : `exited with ${code}`;
      reject(new ToolFailed(`${cmd} ${how}: ${tail.trim() || "(no output)"}`, tail));
    });
  });
}
