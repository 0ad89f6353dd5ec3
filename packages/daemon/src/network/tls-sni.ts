import { classifyHost } from "./egress-decision.js";

/**
 * The server name a TLS ClientHello asks for (RFC 8446 4.1.2, RFC 6066 3), read from the first bytes a
 * sandbox sends, before any byte goes anywhere. The ClientHello may be split over several records and
 * arrive over several reads: the caller passes everything read so far and calls again on `need-more`.
 * Anything ambiguous (two server_name extensions, two host names) is invalid, so no server can read a
 * different name than the one the policy was checked against.
 */
export type SniResult =
  | { kind: "need-more" }
  /** `name` is null when the ClientHello names no server, or names it by an IP literal. */
  | { kind: "done"; name: string | null }
  | { kind: "invalid"; reason: string };

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const NAME_TYPE_HOST = 0;
/** A TLSPlaintext fragment is at most 2^14 bytes. */
const MAX_FRAGMENT = 16_384;
/** More than any real ClientHello (post-quantum key shares included) and than the proxy's peek bound. */
const MAX_HELLO = 16_384;

/** The first byte of a TLS handshake record: how the proxy tells TLS from plain HTTP. */
export function looksLikeTls(first: number): boolean {
  return first === RECORD_HANDSHAKE;
}

class Truncated extends Error {}
class Invalid extends Error {}

/** A bounds-checked reader: running past the end is `Truncated` (or `Invalid` once the input is complete). */
class Reader {
  constructor(private readonly buf: Buffer, private pos = 0, private readonly end = buf.length, private readonly complete = false) {}
  private need(n: number): void {
    if (this.pos + n > this.end) throw this.complete ? new Invalid("length runs past its container") : new Truncated();
  }
  u8(): number { this.need(1); return this.buf[this.pos++] ?? 0; }
  u16(): number { this.need(2); const v = this.buf.readUInt16BE(this.pos); this.pos += 2; return v; }
  u24(): number { this.need(3); const v = this.buf.readUIntBE(this.pos, 3); this.pos += 3; return v; }
  bytes(n: number): Buffer { this.need(n); const v = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return v; }
  skip(n: number): void { this.need(n); this.pos += n; }
  /** A sub-reader over the next `n` bytes, which must all be there. */
  sub(n: number): Reader { const b = this.bytes(n); return new Reader(b, 0, b.length, true); }
  get left(): number { return this.end - this.pos; }
}

/**
 * Joins the handshake records' fragments, up to the first incomplete record or the first record of
 * another type (`ended`: 0-RTT data or a ChangeCipherSpec may follow the ClientHello, never cut it).
 */
function handshakeBytes(data: Buffer): { bytes: Buffer; ended: boolean } {
  const parts: Buffer[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] !== RECORD_HANDSHAKE) {
      if (pos === 0) throw new Invalid("not a handshake record");
      return { bytes: Buffer.concat(parts), ended: true };
    }
    if (pos + 5 > data.length) return { bytes: Buffer.concat(parts), ended: false };
    if (data[pos + 1] !== 3) throw new Invalid("not a TLS record version");
    const length = data.readUInt16BE(pos + 3);
    if (length === 0 || length > MAX_FRAGMENT) throw new Invalid("bad record length");
    const end = pos + 5 + length;
    parts.push(data.subarray(pos + 5, Math.min(end, data.length)));
    if (end > data.length) return { bytes: Buffer.concat(parts), ended: false };
    pos = end;
  }
  return { bytes: Buffer.concat(parts), ended: false };
}

function serverName(ext: Reader): string | null {
  const list = ext.sub(ext.u16());
  if (ext.left !== 0) throw new Invalid("server_name extension has trailing bytes");
  let name: string | null | undefined;
  while (list.left > 0) {
    const type = list.u8();
    const value = list.bytes(list.u16());
    if (type !== NAME_TYPE_HOST) continue;
    if (name !== undefined) throw new Invalid("two host names");
    if (value.length === 0) throw new Invalid("empty host name");
    const host = classifyHost(value.toString("latin1"));
    if (host.kind === "invalid") throw new Invalid("host name is not a DNS name");
    name = host.kind === "name" ? host.name : null;
  }
  return name ?? null;
}

function clientHelloName(hello: Reader): string | null {
  hello.skip(2 + 32); // legacy_version, random
  hello.skip(hello.u8()); // legacy_session_id
  const suites = hello.u16();
  if (suites === 0 || suites % 2 !== 0) throw new Invalid("bad cipher_suites");
  hello.skip(suites);
  const compression = hello.u8();
  if (compression === 0) throw new Invalid("no compression methods");
  hello.skip(compression);
  if (hello.left === 0) return null; // no extensions at all
  const exts = hello.sub(hello.u16());
  if (hello.left !== 0) throw new Invalid("ClientHello has trailing bytes");
  let name: string | null | undefined;
  while (exts.left > 0) {
    const type = exts.u16();
    const body = exts.sub(exts.u16());
    if (type !== EXT_SERVER_NAME) continue;
    if (name !== undefined) throw new Invalid("two server_name extensions");
    name = serverName(body);
  }
  return name ?? null;
}

/** Reads the SNI from the bytes a client sent so far (starting at its first byte). */
export function parseClientHello(data: Buffer): SniResult {
  try {
    if (data.length === 0) return { kind: "need-more" };
    const { bytes, ended } = handshakeBytes(data);
    if (bytes.length >= 1 && bytes[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: "invalid", reason: "not a ClientHello" };
    const length = bytes.length >= 4 ? bytes.readUIntBE(1, 3) : undefined;
    if (length !== undefined && length > MAX_HELLO) return { kind: "invalid", reason: "ClientHello too large" };
    if (length === undefined || length > bytes.length - 4) {
      return ended ? { kind: "invalid", reason: "ClientHello cut by another record" } : { kind: "need-more" };
    }
    return { kind: "done", name: clientHelloName(new Reader(bytes, 4, 4 + length, true)) };
  } catch (err) {
    if (err instanceof Truncated) return { kind: "need-more" };
    if (err instanceof Invalid) return { kind: "invalid", reason: err.message };
    throw err;
  }
}
