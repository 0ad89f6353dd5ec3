import { errorBody, toApiError } from "./http-errors.js";

const encoder = new TextEncoder();
const LATER = Symbol("later");
/** Past this much, the ready events go out as a stream (with backpressure) instead of gathered. */
const MAX_GATHERED = 64 * 1024;

/** Resolves after the event loop's current turn: what is not ready by then waits on I/O. */
function nextTurn(): Promise<typeof LATER> {
  return new Promise((resolve) => setImmediate(() => resolve(LATER)));
}

const line = (value: unknown): string => `${JSON.stringify(value)}\n`;

/**
 * An NDJSON response fed by an async generator, pulled only as fast as the client reads (backpressure
 * reaches the agent's credit window). The first event is awaited before the response starts, so errors
 * such as an unknown sandbox are ordinary HTTP errors; later failures arrive in-band as an `error` event.
 * When the client goes away, the generator is returned, which kills a foreground command.
 *
 * The events ready along with the first (waiting on no I/O) go out with it, in one write; a stream that
 * has ended by then (a quick code run: its value and its end) is sent whole, with its length. Sent as a
 * stream, its first chunk would wait on @hono/node-server's read-ahead, which sleeps a timer (~1 ms) when
 * the second chunk is not there within two microtasks.
 */
export async function ndjsonResponse(events: AsyncGenerator<unknown>, requestId: string): Promise<Response> {
  const headers = { "content-type": "application/x-ndjson", "cache-control": "no-store", "x-request-id": requestId };
  const first = await events.next();
  let finished = first.done === true;
  let head = first.done ? "" : line(first.value);
  /** A next() that was not ready within the turn: the stream's first pull takes it over. */
  let pending: Promise<IteratorResult<unknown>> | null = null;
  const inBand = (err: unknown): string => line({ type: "error", ...errorBody(toApiError(err), requestId) });
  while (!finished && head.length < MAX_GATHERED) {
    const next = events.next();
    const got = await Promise.race([next, nextTurn()]).catch((err: unknown) => {
      finished = true;
      head += inBand(err);
      return null;
    });
    if (got === null) break;
    if (got === LATER) {
      pending = next;
      // Its failure is awaited by the first pull; a client gone before that must not leave it unhandled.
      next.catch(() => undefined);
      break;
    }
    if (got.done) finished = true;
    else head += line(got.value);
  }
  if (finished) return new Response(head, { status: 200, headers });
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(head));
    },
    async pull(controller) {
      if (finished) return;
      try {
        const next = await (pending ?? events.next());
        pending = null;
        if (next.done) {
          finished = true;
          controller.close();
          return;
        }
        controller.enqueue(encoder.encode(line(next.value)));
      } catch (err) {
        finished = true;
        controller.enqueue(encoder.encode(inBand(err)));
        controller.close();
      }
    },
    async cancel() {
      finished = true;
      await events.return(undefined);
    },
  });
  return new Response(stream, { status: 200, headers });
}
