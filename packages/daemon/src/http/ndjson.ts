import { errorBody, toApiError } from "./http-errors.js";

const encoder = new TextEncoder();

/**
 * An NDJSON response fed by an async generator, pulled only as fast as the client reads (backpressure
 * reaches the agent's credit window). The first event is awaited before the response starts, so errors
 * such as an unknown sandbox are ordinary HTTP errors; later failures arrive in-band as an `error` event.
 * When the client goes away, the generator is returned, which kills a foreground command.
 */
export async function ndjsonResponse(events: AsyncGenerator<unknown>, requestId: string): Promise<Response> {
  const first = await events.next();
  let finished = first.done === true;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      if (!first.done) controller.enqueue(encoder.encode(`${JSON.stringify(first.value)}\n`));
      if (finished) controller.close();
    },
    async pull(controller) {
      if (finished) return;
      try {
        const next = await events.next();
        if (next.done) {
          finished = true;
          controller.close();
          return;
        }
        controller.enqueue(encoder.encode(`${JSON.stringify(next.value)}\n`));
      } catch (err) {
        finished = true;
        controller.enqueue(encoder.encode(`${JSON.stringify({ type: "error", ...errorBody(toApiError(err), requestId) })}\n`));
        controller.close();
      }
    },
    async cancel() {
      finished = true;
      await events.return(undefined);
    },
  });
  return new Response(stream, {
    status: 200,
    headers: { "content-type": "application/x-ndjson", "cache-control": "no-store", "x-request-id": requestId },
  });
}
