import { CommandEventSchema } from "@stasis/protocol";
import { describe, expect, it } from "vitest";
import { ProtocolError } from "./errors.js";
import { readNdjson } from "./ndjson.js";

const ctx = { what: "test stream", status: 200 };

function chunked(chunks: (string | Uint8Array)[], onCancel?: () => void): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks[i++];
      if (next === undefined) controller.close();
      else controller.enqueue(typeof next === "string" ? encoder.encode(next) : next);
    },
    cancel() {
      onCancel?.();
    },
  });
}

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

describe("readNdjson", () => {
  it("reassembles lines split across chunks, several lines per chunk, and blank lines", async () => {
    const stream = chunked(['{"type":"start","pid":7}\n{"type":"std', 'out","data":"a"}\n\n', '{"type":"stderr",', '"data":"b"}\n{"type":"exit","exitCode":0,"signal":null,"timedOut":false,"durationMs":1}\n']);
    expect(await all(readNdjson(stream, CommandEventSchema, ctx))).toEqual([
      { type: "start", pid: 7 },
      { type: "stdout", data: "a" },
      { type: "stderr", data: "b" },
      { type: "exit", exitCode: 0, signal: null, timedOut: false, durationMs: 1 },
    ]);
  });

  it("keeps a multi-byte character split between chunks intact", async () => {
    const bytes = new TextEncoder().encode('{"type":"stdout","data":"h€llo"}\n');
    const cut = bytes.indexOf(0xe2) + 1; // inside the three bytes of '€'
    const events = await all(readNdjson(chunked([bytes.slice(0, cut), bytes.slice(cut)]), CommandEventSchema, ctx));
    expect(events).toEqual([{ type: "stdout", data: "h€llo" }]);
  });

  it("parses a final line without a trailing newline", async () => {
    expect(await all(readNdjson(chunked(['{"type":"start",', '"pid":1}']), CommandEventSchema, ctx))).toEqual([{ type: "start", pid: 1 }]);
  });

  it("rejects lines that are not JSON or not a protocol event", async () => {
    await expect(all(readNdjson(chunked(["not json\n"]), CommandEventSchema, ctx))).rejects.toBeInstanceOf(ProtocolError);
    const err = await all(readNdjson(chunked(['{"type":"start","pid":1}\n{"type":"stdout"}\n']), CommandEventSchema, ctx)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/line 2.*data/);
  });

  it("cancels the body when the consumer stops early", async () => {
    let cancelled = false;
    const stream = chunked(['{"type":"start","pid":1}\n', '{"type":"stdout","data":"x"}\n'], () => (cancelled = true));
    for await (const event of readNdjson(stream, CommandEventSchema, ctx)) {
      expect(event.type).toBe("start");
      break;
    }
    expect(cancelled).toBe(true);
  });
});
