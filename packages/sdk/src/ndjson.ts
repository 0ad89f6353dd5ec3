import type { ReplyContext, Schema } from "./schema.js";
import { parseJson, validate } from "./schema.js";

/**
 * Reads newline-delimited JSON from a byte stream, validating each line. Lines and UTF-8 sequences may be
 * split across chunks in any way. Leaving the loop early cancels the body, which ends the transfer.
 */
export async function* readNdjson<T>(body: ReadableStream<Uint8Array>, schema: Schema<T>, ctx: ReplyContext): AsyncGenerator<T> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  let pending = "";
  let line = 0;
  let finished = false;
  const parse = (text: string): T => {
    line += 1;
    const lineCtx = { ...ctx, what: `${ctx.what} (line ${line})` };
    return validate(schema, parseJson(text, lineCtx), lineCtx);
  };
  try {
    while (!finished) {
      const chunk = await reader.read();
      if (chunk.done) {
        finished = true;
        pending += decoder.decode();
      } else {
        pending += decoder.decode(chunk.value, { stream: true });
      }
      const lines = pending.split("\n");
      // The last piece is an incomplete line until a newline or the end of the stream arrives.
      pending = finished ? "" : (lines.pop() ?? "");
      for (const text of lines) if (text.trim() !== "") yield parse(text);
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
