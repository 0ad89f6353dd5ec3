import { CommandEventSchema, type CommandEvent } from "@stasis/protocol";
import { errorFromBody, protocolError } from "./errors.js";
import { transportError } from "./http.js";
import { readNdjson } from "./ndjson.js";

export type StreamOpener = (signal: AbortSignal) => Promise<{ response: Response; requestId: string | undefined }>;

/**
 * The events of one command or process stream. Iterate it once with `for await`; an in-band `error`
 * event is thrown as its typed error. Breaking out of the loop, `close()`, `await using`, or aborting
 * the caller's signal all abort the HTTP request (for a foreground command that also kills it).
 */
export class CommandStream implements AsyncIterable<CommandEvent>, AsyncDisposable {
  /** The process id, once the `start` event has arrived. */
  pid: number | undefined;
  private readonly controller = new AbortController();
  private iterated = false;
  private closed = false;

  constructor(
    private readonly what: string,
    private readonly open: StreamOpener,
    private readonly callerSignal?: AbortSignal,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<CommandEvent, void, undefined> {
    if (this.iterated) throw new TypeError("a CommandStream can only be iterated once");
    this.iterated = true;
    const signal = this.callerSignal ? AbortSignal.any([this.callerSignal, this.controller.signal]) : this.controller.signal;
    let exited = false;
    try {
      const { response, requestId } = await this.open(signal);
      if (!response.body) throw protocolError(`${this.what} replied without a body`, response.status, requestId);
      for await (const event of readNdjson(response.body, CommandEventSchema, { what: `${this.what} event`, status: response.status, requestId })) {
        // After the exit, the body is read to its close (it closes right after), so that the connection is
        // kept for the next call rather than cut.
        if (exited) continue;
        if (event.type === "error") throw errorFromBody({ ...event.error, requestId: event.error.requestId ?? requestId });
        if (event.type === "start") this.pid = event.pid;
        exited = event.type === "exit";
        yield event;
      }
      if (!exited) throw protocolError(`${this.what} ended without an exit event`, response.status, requestId);
    } catch (err) {
      if (this.closed) return;
      throw transportError(err, this.what, this.callerSignal, undefined);
    } finally {
      // Leaving before the exit (a break, close(), an error) aborts the request: a foreground command is killed.
      if (!exited) this.controller.abort();
    }
  }

  /** Stops the stream; a loop over it ends without an error. */
  close(): void {
    this.closed = true;
    this.controller.abort();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
