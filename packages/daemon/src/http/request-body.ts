import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import { ApiError } from "../errors/api-error.js";

/** How long a request body may go without a byte before the request is refused (a lying Content-Length). */
export const DEFAULT_BODY_IDLE_MS = 30_000;

/** The client closed its connection mid-request: nothing to answer, and not the daemon's failure. */
export class ClientGoneError extends Error {
  constructor(what = "the client closed the connection mid-request") {
    super(what);
    this.name = "ClientGoneError";
  }
}

/** The app's setting (AppOptions.bodyIdleMs), put on every request by its first middleware. */
type BodyIdleEnv = { Variables: { bodyIdleMs?: number } };
export function setBodyIdle(c: Context, ms: number): void {
  (c as unknown as Context<BodyIdleEnv>).set("bodyIdleMs", ms);
}
function bodyIdleOf(c: Context): number {
  return (c as unknown as Context<BodyIdleEnv>).get("bodyIdleMs") ?? DEFAULT_BODY_IDLE_MS;
}

export function incomingOf(c: Context): IncomingMessage | undefined {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
}

/**
 * The request body as it arrives, read from Node's request with backpressure. A body that stalls for
 * idleMs (a Content-Length larger than what is sent) fails with 400 instead of waiting forever, and a
 * consumer that stops early leaves the request paused, not destroyed: the socket stays whole until the
 * error reply (which then says `Connection: close`, see app.ts) has been written.
 */
export async function* requestBody(c: Context, idleMs = bodyIdleOf(c)): AsyncGenerator<Buffer> {
  const incoming = incomingOf(c);
  if (!incoming) {
    // Served in-process (app.request in tests): a web body.
    for await (const chunk of (c.req.raw.body ?? []) as AsyncIterable<Uint8Array>) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    return;
  }
  if (incoming.readableEnded) return;
  const queue: Buffer[] = [];
  let ended = false;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const onData = (chunk: Buffer) => {
    queue.push(chunk);
    incoming.pause();
    wake?.();
  };
  const onEnd = () => {
    ended = true;
    wake?.();
  };
  const onGone = () => {
    failure ??= new ClientGoneError();
    wake?.();
  };
  incoming.on("data", onData).on("end", onEnd).on("error", onGone).on("close", onGone);
  let received = 0;
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk) {
        received += chunk.length;
        yield chunk;
        continue;
      }
      if (ended) return;
      if (failure) throw failure;
      incoming.resume();
      const stalled = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), idleMs);
        wake = () => {
          clearTimeout(timer);
          resolve(false);
        };
      });
      wake = null;
      if (stalled) {
        const promised = incoming.headers["content-length"];
        throw new ApiError("invalid_request", `the request body stalled: no bytes for ${idleMs} ms after ${received}${promised ? ` of the ${promised} its Content-Length announced` : ""}`);
      }
    }
  } finally {
    incoming.off("data", onData).off("end", onEnd).off("error", onGone).off("close", onGone);
    if (!ended) incoming.pause();
  }
}
