/**
 * The little of the DNS wire format (RFC 1035 4.1) the daemon's resolver reads: a query's header and its
 * one question, checked strictly, and answers it makes itself (an rcode and the question echoed, no
 * records). Everything else in a query (EDNS options) goes to the upstream resolver as it came.
 */

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const QTYPE = { A: 1, AAAA: 28, IXFR: 251, AXFR: 252 } as const;
export const QCLASS_IN = 1;

/** Far above any query a resolver library sends (a 255-byte name and an EDNS record with options). */
export const MAX_QUERY_BYTES = 1024;
const HEADER = 12;
const QR = 0x8000;
const RD = 0x0100;
const RA = 0x0080;

export interface Question {
  /** Lowercased, dotted, no trailing dot; "" for the root. */
  name: string;
  type: number;
  class: number;
}

export type ParsedQuery =
  /** A query to answer; `questionEnd` is where its question ends (for echoing it). */
  | { kind: "query"; id: number; flags: number; question: Question; questionEnd: number }
  /** A query to answer with this rcode and no question (FORMERR, NOTIMP). */
  | { kind: "error"; id: number; flags: number; rcode: number }
  /** Not worth an answer: too short to have an id, or a response (never answer those: no loops). */
  | { kind: "drop" };

class Malformed extends Error {}

/** Reads an uncompressed name at `pos`; returns it and the offset after it. */
function readName(packet: Buffer, start: number): { name: string; end: number } {
  const labels: string[] = [];
  let pos = start;
  for (;;) {
    const len = packet[pos];
    if (len === undefined) throw new Malformed("name runs past the packet");
    pos++;
    if (len === 0) break;
    // 0xC0: a compression pointer, 0x40/0x80: reserved label types; a question has no reason for either.
    if (len > 63) throw new Malformed("compressed or extended label");
    if (pos + len > packet.length) throw new Malformed("label runs past the packet");
    const label = packet.subarray(pos, pos + len);
    // Printable ASCII without dots or spaces: no label can make a name read as another one.
    if (label.some((b) => b < 0x21 || b > 0x7e || b === 0x2e)) throw new Malformed("label with unusual bytes");
    labels.push(label.toString("latin1").toLowerCase());
    pos += len;
    if (pos - start > 255) throw new Malformed("name longer than 255 bytes");
  }
  return { name: labels.join("."), end: pos };
}

/** Skips a resource record (the EDNS OPT record of a query's additional section). */
function skipRecord(packet: Buffer, start: number): number {
  const { end } = readName(packet, start);
  if (end + 10 > packet.length) throw new Malformed("record header runs past the packet");
  const rdEnd = end + 10 + packet.readUInt16BE(end + 8);
  if (rdEnd > packet.length) throw new Malformed("record data runs past the packet");
  return rdEnd;
}

export function parseQuery(packet: Buffer): ParsedQuery {
  if (packet.length < HEADER || packet.length > MAX_QUERY_BYTES) return { kind: "drop" };
  const id = packet.readUInt16BE(0);
  const flags = packet.readUInt16BE(2);
  if ((flags & QR) !== 0) return { kind: "drop" };
  if (((flags >> 11) & 0xf) !== 0) return { kind: "error", id, flags, rcode: RCODE.NOTIMP };
  const formerr = { kind: "error", id, flags, rcode: RCODE.FORMERR } as const;
  const [qd, an, ns, ar] = [4, 6, 8, 10].map((o) => packet.readUInt16BE(o));
  if (qd !== 1 || an !== 0 || ns !== 0 || ar === undefined || ar > 1) return formerr;
  try {
    const { name, end } = readName(packet, HEADER);
    if (end + 4 > packet.length) return formerr;
    const question = { name, type: packet.readUInt16BE(end), class: packet.readUInt16BE(end + 2) };
    const questionEnd = end + 4;
    const recordsEnd = ar === 1 ? skipRecord(packet, questionEnd) : questionEnd;
    if (recordsEnd !== packet.length) return formerr;
    return { kind: "query", id, flags, question, questionEnd };
  } catch (err) {
    if (err instanceof Malformed) return formerr;
    throw err;
  }
}

/** An answer with `rcode` and no records, echoing the query's question when it has one. */
export function buildAnswer(query: Buffer, parsed: Exclude<ParsedQuery, { kind: "drop" }>, rcode: number): Buffer {
  const question = parsed.kind === "query" ? query.subarray(HEADER, parsed.questionEnd) : Buffer.alloc(0);
  const out = Buffer.alloc(HEADER + question.length);
  out.writeUInt16BE(parsed.id, 0);
  out.writeUInt16BE(QR | (parsed.flags & (0xf << 11)) | (parsed.flags & RD) | RA | rcode, 2);
  out.writeUInt16BE(question.length > 0 ? 1 : 0, 4);
  question.copy(out, HEADER);
  return out;
}

/** Whether `response` answers the query with this id (a response, same id). */
export function answersQuery(response: Buffer, id: number): boolean {
  return response.length >= HEADER && response.readUInt16BE(0) === id && (response.readUInt16BE(2) & QR) !== 0;
}

export function rcodeOf(response: Buffer): number {
  return response.length >= HEADER ? response.readUInt16BE(2) & 0xf : -1;
}

/** A query for `name` (for tests and the resolver's callers), with an optional EDNS record. */
export function buildQuery(id: number, name: string, type: number, options: { edns?: boolean; rd?: boolean } = {}): Buffer {
  const labels = name === "" ? [] : name.split(".");
  const qname = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "latin1")])), Buffer.from([0])]);
  const edns = options.edns === true ? Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  const header = Buffer.alloc(HEADER);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(options.rd === false ? 0 : RD, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(edns.length > 0 ? 1 : 0, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(QCLASS_IN, 2);
  return Buffer.concat([header, qname, tail, edns]);
}
