import type { CommandEvent, CommandResult } from "@stasis/protocol";
import { protocolError } from "./errors.js";

export interface OutputCallbacks {
  onStdout?: ((data: string) => void) | undefined;
  onStderr?: ((data: string) => void) | undefined;
}

/** The outcome of a background process, as seen by attaching to it. */
export interface ProcessResult {
  pid: number;
  exitCode: number;
  signal: string | null;
  /** Output seen while attached, including the replayed recent output when attached with replay. */
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number | null;
}

/** Consumes a stream to its exit event, forwarding output to the callbacks as it arrives. */
export async function collect(events: AsyncIterable<CommandEvent>, callbacks: OutputCallbacks = {}): Promise<ProcessResult> {
  let pid = 0;
  let stdout = "";
  let stderr = "";
  for await (const event of events) {
    switch (event.type) {
      case "start":
        pid = event.pid;
        break;
      case "stdout":
        stdout += event.data;
        callbacks.onStdout?.(event.data);
        break;
      case "stderr":
        stderr += event.data;
        callbacks.onStderr?.(event.data);
        break;
      case "exit":
        return { pid, exitCode: event.exitCode, signal: event.signal, stdout, stderr, timedOut: event.timedOut, durationMs: event.durationMs };
      case "error":
        // CommandStream throws these; a hand-made iterable might not.
        throw protocolError(`stream error event: ${event.error.message}`, null);
    }
  }
  throw protocolError("stream ended without an exit event", null);
}

export function toCommandResult(result: ProcessResult): CommandResult {
  return { ...result, truncated: false, durationMs: result.durationMs ?? 0 };
}
