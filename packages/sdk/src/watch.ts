import { routes, type WatchEvent } from "@stasis/protocol";
import { errorFromBody, protocolError } from "./errors.js";
import type { HttpClient } from "./http.js";
import { readNdjson } from "./ndjson.js";

export interface WatchOptions {
  /** Also watch every directory below (and those made later). Default false. */
  recursive?: boolean;
  signal?: AbortSignal;
}

/** A change (create, write, remove, rename, chmod), `dropped` (changes lost to a slow reader) or `end`. */
export type WatchChange = Exclude<WatchEvent, { type: "start" | "error" }>;

/**
 * A running watch: iterate it for changes; `stop()` (or leaving the loop) ends it. Resolved by
 * `files.watch` once the watch is in place, so every change made after that is seen.
 */
export class FileWatch implements AsyncIterable<WatchChange> {
  constructor(
    private readonly events: AsyncGenerator<WatchEvent>,
    private readonly abort: AbortController,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<WatchChange> {
    try {
      for await (const e of this.events) {
        // In-band failure (the sandbox hibernated or died): thrown as its typed error.
        if (e.type === "error") throw errorFromBody(e.error);
        if (e.type !== "start") yield e;
      }
    } catch (err) {
      // stop() aborts the body: that is an end, not an error.
      if (!this.abort.signal.aborted) throw err;
    }
  }

  stop(): void {
    this.abort.abort();
  }
}

export async function openWatch(http: HttpClient, sandboxId: string, path: string, options: WatchOptions): Promise<FileWatch> {
  const abort = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, abort.signal]) : abort.signal;
  const { response, requestId } = await http.open("watchFiles", { params: { id: sandboxId }, query: { path, recursive: options.recursive }, signal });
  if (!response.body) throw protocolError("watch replied without a body", response.status, requestId);
  const events = readNdjson(response.body, routes.watchFiles.response.schema, { what: "watch event", status: response.status, requestId });
  const first = await events.next();
  if (first.done || first.value.type !== "start") throw protocolError("watch did not start with a start event", response.status, requestId);
  return new FileWatch(events, abort);
}
