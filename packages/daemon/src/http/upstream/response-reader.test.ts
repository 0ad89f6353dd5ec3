import { describe, expect, it } from "vitest";
import { ResponseReader, UpstreamProtocolError, type ResponseHead } from "./response-reader.js";

interface Read {
  heads: ResponseHead[];
  body: string;
  ends: boolean[];
}

/** Feeds `wire` in pieces of `step` bytes (each piece in a reused buffer, as the client's reads are) and then, if asked, the close. */
function read(wire: string, options: { method?: string; step?: number; close?: boolean } = {}): Read {
  const out: Read = { heads: [], body: "", ends: [] };
  const reader = new ResponseReader(options.method ?? "GET", {
    head: (h) => out.heads.push(h),
    body: (view) => (out.body += view.toString("latin1")),
    end: (reusable) => out.ends.push(reusable),
  });
  const bytes = Buffer.from(wire, "latin1");
  const step = options.step ?? bytes.length;
  const scratch = Buffer.alloc(Math.max(1, step));
  for (let at = 0; at < bytes.length; at += step) {
    const n = bytes.copy(scratch, 0, at, at + step);
    reader.push(scratch.subarray(0, n));
    // What a reader kept past the call must not be a view of the reused buffer.
    scratch.fill(0x58);
  }
  if (options.close) reader.eof();
  return out;
}

const CHUNKED = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\nc\r\nworld, again\r\n0\r\nx-trailer: t\r\n\r\n";

describe("reading a sandbox server's HTTP/1.1 response", () => {
  it("passes a Content-Length body on, and the connection is reusable after it", () => {
    const r = read("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello");
    expect(r.heads).toEqual([{ status: 200, statusText: "OK", rawHeaders: ["content-length", "5", "x-a", "1"] }]);
    expect(r).toMatchObject({ body: "hello", ends: [true] });
  });

  it("takes chunked framing (extensions, trailers) off, split at every byte as at once", () => {
    for (const step of [1, 2, 3, 7, 1000]) {
      const r = read(CHUNKED, { step });
      expect(r.body, `step ${step}`).toBe("hello world, again");
      expect(r.ends, `step ${step}`).toEqual([true]);
      expect(r.heads[0]?.rawHeaders).toEqual(["transfer-encoding", "chunked", "content-type", "text/plain"]);
    }
  });

  it("reads a body without length to the close, and the connection is not reused", () => {
    const r = read("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nstreamed until the end", { step: 4, close: true });
    expect(r).toMatchObject({ body: "streamed until the end", ends: [false] });
  });

  it("has no body for HEAD, 204 and 304, whatever the headers say", () => {
    expect(read("HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n", { method: "HEAD" })).toMatchObject({ body: "", ends: [true] });
    expect(read("HTTP/1.1 204 No Content\r\n\r\n")).toMatchObject({ body: "", ends: [true] });
    expect(read("HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n")).toMatchObject({ body: "", ends: [true] });
  });

  it("skips interim 1xx answers and reads the final one", () => {
    const r = read("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok", { step: 5 });
    expect(r.heads.map((h) => h.status)).toEqual([201]);
    expect(r).toMatchObject({ body: "ok", ends: [true] });
  });

  it("does not reuse a connection the server closes, nor one of HTTP/1.0 without keep-alive", () => {
    expect(read("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\nx").ends).toEqual([false]);
    expect(read("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\nx").ends).toEqual([false]);
    expect(read("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\nx").ends).toEqual([true]);
  });

  it("refuses malformed or oversized responses with an error, never a guess", () => {
    const bad = [
      "SSH-2.0-OpenSSH\r\n\r\n",
      "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded: line\r\n\r\n",
      "HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nx: a\x01b\r\n\r\n",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\nab\r\n",
      "HTTP/1.1 101 Switching Protocols\r\n\r\n",
      "HTTP/1.1 099 Low\r\n\r\n",
      `HTTP/1.1 200 OK\r\nx: ${"a".repeat(70_000)}\r\n\r\n`,
      `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1${" ".repeat(5000)}`,
    ];
    for (const wire of bad) expect(() => read(wire, { step: 100 }), JSON.stringify(wire.slice(0, 60))).toThrow(UpstreamProtocolError);
  });

  it("calls a close in the middle of a response a cut, and one before it no response", () => {
    expect(() => read("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", { close: true })).toThrow(/in the middle of its response/);
    expect(() => read("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab", { close: true })).toThrow(/in the middle/);
    expect(() => read("HTTP/1.1 2", { close: true })).toThrow(/without a response/);
  });

  it("takes bytes after a complete response as a reason not to reuse the connection", () => {
    const ends: boolean[] = [];
    const reader = new ResponseReader("GET", { head: () => {}, body: () => {}, end: (r) => ends.push(r) });
    reader.push(Buffer.from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"));
    expect(ends).toEqual([false]);
    expect(reader.done).toBe(true);
  });
});
