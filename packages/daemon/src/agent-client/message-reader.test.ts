import { describe, expect, it } from "vitest";
import { MessageReader } from "./message-reader.js";

/** A frame built byte by byte as docs/agent-protocol.md lays it out. */
function frame(header: string, payload: Buffer): Buffer {
  const h = Buffer.from(header);
  const prefix = Buffer.from([0, h.length >>> 24, (h.length >>> 16) & 255, (h.length >>> 8) & 255, h.length & 255, payload.length >>> 24, (payload.length >>> 16) & 255, (payload.length >>> 8) & 255, payload.length & 255]);
  return Buffer.concat([prefix, h, payload]);
}

function collect(maxLine = 100) {
  const got: string[] = [];
  const reader = new MessageReader(maxLine, {
    message: (body, payload) => got.push(payload === null ? `line ${body.toString()}` : `frame ${body.toString()} ${payload.toString("hex")}`),
    oversizeLine: (bytes) => got.push(`oversize ${bytes}`),
    fatal: (reason) => got.push(`fatal ${reason}`),
  });
  return { got, reader };
}

describe("MessageReader", () => {
  const stream = Buffer.concat([
    Buffer.from('{"a":1}\n\n'),
    frame('{"b":2}', Buffer.from([0, 10, 255])),
    frame('{"c":3}', Buffer.alloc(0)),
    Buffer.from('{"d":4}\n'),
  ]);
  const want = ['line {"a":1}', 'frame {"b":2} 000aff', 'frame {"c":3} ', 'line {"d":4}'];

  it("splits lines and frames, however the stream is cut", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const { got, reader } = collect();
      reader.push(stream.subarray(0, cut));
      reader.push(stream.subarray(cut));
      expect(got).toEqual(want);
    }
    const { got, reader } = collect();
    for (const byte of stream) reader.push(Buffer.from([byte]));
    expect(got).toEqual(want);
  });

  it("drops an over-long line and goes on at the next newline", () => {
    const { got, reader } = collect(10);
    reader.push(Buffer.from("0123456789\n"));
    reader.push(Buffer.from("0123456789A"));
    reader.push(Buffer.from("BCDEF\nok\n"));
    expect(got).toEqual(["line 0123456789", "oversize 11", "line ok"]);
  });

  it("stops at a frame over the limits, before allocating it", () => {
    for (const [header, payload] of [
      [65_537, 0],
      [0, 0],
      [10, 4 * 1024 * 1024 + 1],
    ]) {
      const { got, reader } = collect();
      const prefix = Buffer.alloc(9);
      prefix.writeUInt32BE(header!, 1);
      prefix.writeUInt32BE(payload!, 5);
      reader.push(Buffer.concat([prefix, Buffer.from('{"after":1}\n')]));
      expect(got).toHaveLength(1);
      expect(got[0]).toMatch(/^fatal the agent announced a frame of/);
    }
  });
});

describe("MessageReader.skipUntil (resync after a daemon restart)", () => {
  it("drops whatever came before the token, even split across chunks and mid-frame, then parses in step", () => {
    const got: string[] = [];
    const reader = new MessageReader(1024, { message: (body) => got.push(body.toString()), oversizeLine: () => {}, fatal: (r) => got.push(`fatal: ${r}`) });
    // The tail of a frame a previous daemon was reading (a huge announced length would be fatal if parsed).
    const stale = Buffer.concat([Buffer.from([0, 0xff, 0xff, 0xff, 0xff]), Buffer.from('garbage {"id":1,"ok":true}\n')]);
    reader.skipUntil(Buffer.from('{"id":42,"ok":'));
    const wanted = Buffer.from('{"id":42,"ok":true,"result":{}}\n{"ev":"after"}\n');
    const all = Buffer.concat([stale, wanted]);
    for (let i = 0; i < all.length; i += 7) reader.push(all.subarray(i, i + 7));
    expect(got).toEqual(['{"id":42,"ok":true,"result":{}}', '{"ev":"after"}']);
  });
});

describe("MessageReader bounds what a flood costs", () => {
  it("gives up a resync that drops more than its bound, and reads nothing after", () => {
    const got: string[] = [];
    const reader = new MessageReader(1024, { message: (b) => got.push(b.toString()), oversizeLine: () => {}, fatal: (r) => got.push(`fatal: ${r}`) }, 3 * 2 ** 20);
    reader.skipUntil(Buffer.from('{"id":42,"ok":'));
    const flood = Buffer.from("{}\n".repeat(64 * 1024));
    for (let i = 0; i < 100; i++) reader.push(flood);
    reader.push(Buffer.from('{"id":42,"ok":true}\n'));
    expect(got).toEqual(["fatal: more than 3 MiB arrived on the agent channel before the agent answered the resync"]);
  });

  it("says again and again that an endless line is being dropped", () => {
    const { got, reader } = collect(10);
    for (let i = 0; i < 10; i++) reader.push(Buffer.from("x".repeat(7)));
    reader.push(Buffer.from("\nok\n"));
    expect(got).toEqual(["oversize 14", "oversize 28", "oversize 42", "oversize 56", "oversize 70", "line ok"]);
  });
});
