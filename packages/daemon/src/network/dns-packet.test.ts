import { describe, expect, it } from "vitest";
import { QTYPE, RCODE, answersQuery, buildAnswer, buildQuery, parseQuery, rcodeOf } from "./dns-packet.js";

describe("parseQuery", () => {
  it("reads a query's id and question (lowercased), with or without EDNS", () => {
    for (const edns of [false, true]) {
      const q = buildQuery(0x1234, "PyPI.org", QTYPE.A, { edns });
      expect(parseQuery(q)).toMatchObject({ kind: "query", id: 0x1234, question: { name: "pypi.org", type: QTYPE.A, class: 1 } });
    }
  });

  it("builds an answer that echoes the question and keeps the id and RD", () => {
    const q = buildQuery(77, "a.example", QTYPE.AAAA, { edns: true });
    const parsed = parseQuery(q);
    if (parsed.kind !== "query") throw new Error("not a query");
    const a = buildAnswer(q, parsed, RCODE.NXDOMAIN);
    expect(answersQuery(a, 77)).toBe(true);
    expect(answersQuery(a, 78)).toBe(false);
    expect(rcodeOf(a)).toBe(RCODE.NXDOMAIN);
    expect(a.readUInt16BE(2) & 0x0100).toBe(0x0100);
    expect(a.readUInt16BE(4)).toBe(1);
    expect(a.subarray(12)).toEqual(q.subarray(12, parsed.questionEnd));
    // The answer is a response: parsing it as a query drops it.
    expect(parseQuery(a)).toEqual({ kind: "drop" });
  });

  it("drops what has no id and responses", () => {
    expect(parseQuery(Buffer.alloc(11))).toEqual({ kind: "drop" });
    const r = buildQuery(1, "a.example", QTYPE.A);
    r.writeUInt16BE(0x8000, 2);
    expect(parseQuery(r)).toEqual({ kind: "drop" });
    expect(parseQuery(Buffer.alloc(2000))).toEqual({ kind: "drop" });
  });

  it("answers other opcodes with NOTIMP", () => {
    const q = buildQuery(5, "a.example", QTYPE.A);
    q.writeUInt16BE(2 << 11, 2); // STATUS
    expect(parseQuery(q)).toMatchObject({ kind: "error", rcode: RCODE.NOTIMP, id: 5 });
  });

  const formerr: [string, (q: Buffer) => Buffer][] = [
    ["two questions", (q) => (q.writeUInt16BE(2, 4), q)],
    ["no question", (q) => (q.writeUInt16BE(0, 4), q)],
    ["an answer record", (q) => (q.writeUInt16BE(1, 6), q)],
    ["two additional records", (q) => (q.writeUInt16BE(2, 10), q)],
    ["trailing bytes", (q) => Buffer.concat([q, Buffer.from([0])])],
    ["a cut question", (q) => q.subarray(0, q.length - 2)],
    ["a cut name", (q) => q.subarray(0, 15)],
    ["a compression pointer", (q) => Buffer.concat([q.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])])],
    ["a label with a dot", (q) => Buffer.concat([q.subarray(0, 12), Buffer.from([3, 0x61, 0x2e, 0x62, 0, 0, 1, 0, 1])])],
    ["a label with a NUL", (q) => Buffer.concat([q.subarray(0, 12), Buffer.from([3, 0x61, 0, 0x62, 0, 0, 1, 0, 1])])],
    ["an additional record cut short", (q) => (q.writeUInt16BE(1, 10), Buffer.concat([q, Buffer.from([0, 0, 41])]))],
  ];
  it.each(formerr)("answers FORMERR to %s", (_name, mangle) => {
    const parsed = parseQuery(mangle(buildQuery(9, "a.example", QTYPE.A)));
    expect(parsed).toMatchObject({ kind: "error", rcode: RCODE.FORMERR, id: 9 });
    if (parsed.kind === "error") expect(buildAnswer(Buffer.alloc(0), parsed, parsed.rcode).length).toBe(12);
  });

  it("refuses a name over 255 bytes", () => {
    const long = Array.from({ length: 5 }, () => "a".repeat(60)).join(".");
    expect(parseQuery(buildQuery(1, long, QTYPE.A))).toMatchObject({ kind: "error", rcode: RCODE.FORMERR });
  });

  it("never throws on random and mutated packets", () => {
    let seed = 11;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const base = buildQuery(3, "files.pythonhosted.org", QTYPE.A, { edns: true });
    for (let i = 0; i < 5000; i++) {
      const m = i % 2 === 0 ? Buffer.from(base) : Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256)));
      for (let k = 0; k < 3; k++) m[Math.floor(rand() * m.length)] = Math.floor(rand() * 256);
      const parsed = parseQuery(m.subarray(0, Math.floor(rand() * (m.length + 1))));
      if (parsed.kind !== "drop") expect(buildAnswer(m, parsed, RCODE.REFUSED).length).toBeGreaterThanOrEqual(12);
    }
  });
});
