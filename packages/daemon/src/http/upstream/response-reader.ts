/**
 * An incremental reader of HTTP/1.1 responses (RFC 9112) from a sandbox's server, for the preview route.
 * It takes bytes as they arrive and hands the body on as views of them, without copying or allocating per
 * read: the route's throughput was bound by the per-chunk garbage of Node's HTTP client (every read a new
 * 64 KiB buffer, an old-space collection every ~16 MiB in the daemon's heap). Everything it reads is a
 * sandbox's and untrusted: heads and chunk lines are bounded, malformed framing is an error, never a guess.
 */

export interface ResponseHead {
  status: number;
  statusText: string;
  /** [name, value, name, value, ...] as sent, hop-by-hop ones included. */
  rawHeaders: string[];
}

export interface ResponseEvents {
  head(head: ResponseHead): void;
  /** A piece of the body (chunked framing taken off): a view valid only during the call. */
  body(view: Buffer): void;
  /** The message is complete; `reusable`: the connection may carry another request. */
  end(reusable: boolean): void;
}

export class UpstreamProtocolError extends Error {
  override readonly name = "UpstreamProtocolError";
}

const MAX_HEAD_BYTES = 64 * 1024;
const MAX_HEADERS = 200;
const MAX_CHUNK_LINE = 4 * 1024;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;
const CRLF_CRLF = Buffer.from("\r\n\r\n");

type Phase =
  | { kind: "head" }
  | { kind: "length"; left: number }
  | { kind: "eof" }
  | { kind: "chunk-size" }
  | { kind: "chunk-data"; left: number }
  | { kind: "chunk-crlf" }
  | { kind: "trailers" }
  | { kind: "done" };

/** One response on a connection; a new reader per request. */
export class ResponseReader {
  private phase: Phase = { kind: "head" };
  private pending: Buffer = Buffer.alloc(0);
  private line = "";
  private keepAlive = true;

  /** @param method the request's: a HEAD's answer has no body, whatever its headers say. */
  constructor(
    private readonly method: string,
    private readonly events: ResponseEvents,
  ) {}

  get done(): boolean {
    return this.phase.kind === "done";
  }

  /** Whether the head has been read (a final one, not an interim 1xx). */
  get headRead(): boolean {
    return this.phase.kind !== "head";
  }

  /** Takes the next bytes from the connection. Throws UpstreamProtocolError on malformed input. */
  push(data: Buffer): void {
    let at = 0;
    while (at < data.length) {
      const phase = this.phase;
      switch (phase.kind) {
        case "head":
          at = this.readHead(data, at);
          break;
        case "length":
          at = this.passBody(phase, data, at);
          if (phase.left === 0) this.finish();
          break;
        case "eof":
          this.events.body(data.subarray(at));
          at = data.length;
          break;
        case "chunk-size":
        case "chunk-crlf":
        case "trailers":
          at = this.readLine(data, at);
          break;
        case "chunk-data":
          at = this.passBody(phase, data, at);
          if (phase.left === 0) this.phase = { kind: "chunk-crlf" };
          break;
        case "done":
          break;
      }
      if (this.phase.kind === "done") {
        // Bytes after the response (a server that answers twice): the connection is never reused.
        this.events.end(this.keepAlive && at === data.length);
        return;
      }
    }
  }

  /** The connection closed: the end of a body read to the close; a cut anywhere else. */
  eof(): void {
    if (this.phase.kind === "eof") {
      this.phase = { kind: "done" };
      this.events.end(false);
      return;
    }
    if (this.phase.kind !== "done") throw new UpstreamProtocolError(this.headRead ? "the sandbox's server closed the connection in the middle of its response" : "the sandbox's server closed the connection without a response");
  }

  /** The message is complete: `push` reports it once it knows whether bytes follow. */
  /** Hands on what `data` holds of the body's next `phase.left` bytes, from `at`; returns where it stopped. */
  private passBody(phase: { left: number }, data: Buffer, at: number): number {
    const n = Math.min(phase.left, data.length - at);
    phase.left -= n;
    this.events.body(data.subarray(at, at + n));
    return at + n;
  }

  private finish(): void {
    this.phase = { kind: "done" };
  }

  private readHead(data: Buffer, at: number): number {
    const joined = this.pending.length > 0 ? Buffer.concat([this.pending, data.subarray(at)]) : data.subarray(at);
    const from = Math.max(0, this.pending.length - 3);
    const end = joined.indexOf(CRLF_CRLF, from);
    if (end < 0) {
      if (joined.length > MAX_HEAD_BYTES) throw new UpstreamProtocolError(`the sandbox's server sent a response head over ${MAX_HEAD_BYTES} bytes`);
      // A copy: `data` is a view of a buffer the next read reuses.
      this.pending = Buffer.from(joined);
      return data.length;
    }
    if (end > MAX_HEAD_BYTES) throw new UpstreamProtocolError(`the sandbox's server sent a response head over ${MAX_HEAD_BYTES} bytes`);
    const consumed = end + 4 - this.pending.length;
    const text = joined.subarray(0, end).toString("latin1");
    this.pending = Buffer.alloc(0);
    this.startBody(parseHead(text));
    return at + consumed;
  }

  private startBody(head: ParsedHead): void {
    // Interim answers (100 Continue, 103 Early Hints): the daemon's own server has answered the client's
    // Expect itself; the final head follows on the same connection.
    if (head.status >= 100 && head.status < 200) {
      if (head.status === 101) throw new UpstreamProtocolError("the sandbox's server switched protocols on a request that asked for no upgrade");
      return;
    }
    this.keepAlive = head.keepAlive;
    this.events.head({ status: head.status, statusText: head.statusText, rawHeaders: head.rawHeaders });
    if (this.method === "HEAD" || head.status === 204 || head.status === 304) return this.finish();
    if (head.chunked) this.phase = { kind: "chunk-size" };
    else if (head.length !== null) {
      this.phase = { kind: "length", left: head.length };
      if (head.length === 0) this.finish();
    } else {
      this.keepAlive = false;
      this.phase = { kind: "eof" };
    }
  }

  /** Chunk-size lines, the CRLF after a chunk's data, and trailer lines (dropped: they are not forwarded). */
  private readLine(data: Buffer, at: number): number {
    const nl = data.indexOf(10, at);
    const piece = data.subarray(at, nl < 0 ? data.length : nl + 1).toString("latin1");
    this.line += piece;
    if (this.line.length > (this.phase.kind === "trailers" ? MAX_HEAD_BYTES : MAX_CHUNK_LINE)) throw new UpstreamProtocolError("the sandbox's server sent an overlong line in a chunked body");
    if (nl < 0) return data.length;
    const line = this.line.endsWith("\r\n") ? this.line.slice(0, -2) : null;
    this.line = "";
    if (line === null) throw new UpstreamProtocolError("the sandbox's server sent a bare LF in a chunked body");
    if (this.phase.kind === "chunk-crlf") {
      if (line !== "") throw new UpstreamProtocolError("the sandbox's server sent a chunk longer than its size");
      this.phase = { kind: "chunk-size" };
    } else if (this.phase.kind === "chunk-size") {
      const size = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
      if (!size) throw new UpstreamProtocolError("the sandbox's server sent a malformed chunk size");
      const left = parseInt(size[1]!, 16);
      this.phase = left === 0 ? { kind: "trailers" } : { kind: "chunk-data", left };
    } else if (line === "") this.finish();
    return nl + 1;
  }
}

interface ParsedHead {
  status: number;
  statusText: string;
  rawHeaders: string[];
  chunked: boolean;
  length: number | null;
  keepAlive: boolean;
}

function parseHead(text: string): ParsedHead {
  const lines = text.split("\r\n");
  const status = STATUS_LINE.exec(lines[0] ?? "");
  if (!status || Number(status[2]) < 100) throw new UpstreamProtocolError("the sandbox's server sent a response that is not HTTP/1.x");
  if (lines.length - 1 > MAX_HEADERS) throw new UpstreamProtocolError(`the sandbox's server sent over ${MAX_HEADERS} headers`);
  const rawHeaders: string[] = [];
  let length: number | null = null;
  let encodings: string[] = [];
  const connection: string[] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    // No obsolete line folding, no space before the colon, no control characters in a value.
    if (!TOKEN.test(name)) throw new UpstreamProtocolError("the sandbox's server sent a malformed header line");
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) throw new UpstreamProtocolError(`the sandbox's server sent a control character in header ${name}`);
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      if (!/^\d{1,15}$/.test(value) || (length !== null && length !== Number(value))) throw new UpstreamProtocolError("the sandbox's server sent an invalid Content-Length");
      length = Number(value);
    } else if (lower === "transfer-encoding") encodings = encodings.concat(value.toLowerCase().split(",").map((s) => s.trim()));
    else if (lower === "connection") connection.push(...value.toLowerCase().split(",").map((s) => s.trim()));
  }
  const http10 = status[1] === "0";
  const chunked = encodings.length > 0 && encodings[encodings.length - 1] === "chunked";
  return {
    status: Number(status[2]),
    statusText: status[3] ?? "",
    rawHeaders,
    chunked,
    // A transfer coding other than chunked last: the body runs to the close (RFC 9112 6.3), whatever the length says.
    length: encodings.length > 0 ? null : length,
    keepAlive: !connection.includes("close") && (!http10 || connection.includes("keep-alive")) && (encodings.length === 0 || chunked),
  };
}
