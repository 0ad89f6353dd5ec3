import type { ProcessInfo, SignalName } from "@stasis/protocol";
import { CommandStream } from "./command-stream.js";
import type { HttpClient } from "./http.js";
import { collect, type OutputCallbacks, type ProcessResult } from "./results.js";

export interface AttachOptions {
  /** Start with the process's recent output kept by the sandbox. Default true. */
  replay?: boolean;
  signal?: AbortSignal;
}

/** A background process in a sandbox. Its lifetime is independent of this object and of any stream. */
export class CommandHandle {
  constructor(
    private readonly http: HttpClient,
    readonly sandboxId: string,
    readonly pid: number,
  ) {}

  private get params() {
    return { id: this.sandboxId, pid: this.pid };
  }

  /** Attaches and waits for the exit; output goes to the callbacks and into the result. */
  async wait(options: OutputCallbacks & AttachOptions = {}): Promise<ProcessResult> {
    const { onStdout, onStderr, ...attach } = options;
    return collect(this.stream(attach), { onStdout, onStderr });
  }

  /** Attaches to the output; closing the stream detaches and leaves the process running. */
  stream(options: AttachOptions = {}): CommandStream {
    const replay = options.replay ?? true;
    return new CommandStream(
      `process ${this.pid} stream`,
      (signal) => this.http.open("attachProcess", { params: this.params, query: { replay }, signal }),
      options.signal,
    );
  }

  async info(): Promise<ProcessInfo> {
    return this.http.json("getProcess", { params: this.params });
  }

  /** Writes to stdin (the process must have been started with `stdin: true`); `eof` closes it afterwards. */
  async sendStdin(data: string, options: { eof?: boolean } = {}): Promise<void> {
    await this.http.empty("writeStdin", { params: this.params, json: { data, eof: options.eof ?? false } });
  }

  async closeStdin(): Promise<void> {
    await this.sendStdin("", { eof: true });
  }

  /** Signals the process group. */
  async signal(name: SignalName = "SIGTERM"): Promise<void> {
    await this.http.empty("signalProcess", { params: this.params, json: { signal: name } });
  }

  /** SIGKILLs the process group. */
  async kill(): Promise<void> {
    await this.http.empty("killProcess", { params: this.params });
  }
}
