import type { CommandRequest, CommandResult, ProcessInfo } from "@stasis/protocol";
import { CommandHandle } from "./command-handle.js";
import { CommandStream } from "./command-stream.js";
import type { HttpClient } from "./http.js";
import { collect, toCommandResult, type OutputCallbacks } from "./results.js";

export type Cmd = string | string[];
/** The daemon's own limit for a foreground command when none is given. */
const FOREGROUND_TIMEOUT_MS = 60_000;

type ForegroundRequest = Omit<CommandRequest, "cmd" | "stdin">;
export type StreamCommandOptions = ForegroundRequest & { signal?: AbortSignal };
export type RunCommandOptions = StreamCommandOptions &
  OutputCallbacks & {
    /** Extra client-side allowance beyond the command's own timeout. Default: the connection's requestTimeoutMs. */
    requestTimeoutMs?: number;
  };
export type StartCommandOptions = Omit<CommandRequest, "cmd">;

/** `sandbox.commands`: foreground commands and background processes. A string runs via /bin/sh -c, an array as argv. */
export class Commands {
  constructor(
    private readonly http: HttpClient,
    private readonly sandboxId: string,
  ) {}

  /**
   * Runs to completion. Without callbacks the output is buffered by the daemon; with `onStdout`/`onStderr`
   * it is streamed and the callbacks see it live. A non-zero exit is a result, not an error.
   */
  async run(cmd: Cmd, options: RunCommandOptions = {}): Promise<CommandResult> {
    const { onStdout, onStderr, signal, requestTimeoutMs, ...request } = options;
    if (onStdout || onStderr) {
      return toCommandResult(await collect(this.stream(cmd, { ...request, ...(signal ? { signal } : {}) }), { onStdout, onStderr }));
    }
    // The reply arrives only when the command ends, so the client waits for the command's limit plus slack.
    const commandLimit = request.timeoutMs ?? FOREGROUND_TIMEOUT_MS;
    const timeoutMs = commandLimit === 0 ? null : commandLimit + (requestTimeoutMs ?? this.http.connection.requestTimeoutMs);
    return this.http.json("runCommand", { params: { id: this.sandboxId }, json: { ...request, cmd }, signal, timeoutMs });
  }

  /** Runs and streams events; ending the stream early kills the command. */
  stream(cmd: Cmd, options: StreamCommandOptions = {}): CommandStream {
    const { signal: callerSignal, ...request } = options;
    return new CommandStream(
      "command stream",
      (signal) => this.http.open("streamCommand", { params: { id: this.sandboxId }, json: { ...request, cmd }, signal }),
      callerSignal,
    );
  }

  /** Starts a background process and returns at once. */
  async start(cmd: Cmd, options: StartCommandOptions = {}): Promise<CommandHandle> {
    const { pid } = await this.http.json("startProcess", { params: { id: this.sandboxId }, json: { ...options, cmd } });
    return new CommandHandle(this.http, this.sandboxId, pid);
  }

  /** Processes started through the API, running and recently exited. */
  async list(): Promise<ProcessInfo[]> {
    return (await this.http.json("listProcesses", { params: { id: this.sandboxId } })).processes;
  }

  /** A handle for an existing process; throws ProcessNotFoundError if there is none. */
  async connect(pid: number): Promise<CommandHandle> {
    await this.http.json("getProcess", { params: { id: this.sandboxId, pid } });
    return new CommandHandle(this.http, this.sandboxId, pid);
  }

  async kill(pid: number): Promise<void> {
    await this.http.empty("killProcess", { params: { id: this.sandboxId, pid } });
  }
}
