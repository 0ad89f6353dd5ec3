import { beforeAll, describe, expect, it } from "vitest";
import { captureClientHello, splitRecords } from "./test-support/tls-fixtures.js";
import { parseClientHello } from "./tls-sni.js";

/** A hand-made ClientHello whose extensions are given raw, for shapes node:tls never sends. */
function craftedHello(extensions: Buffer[] | null): Buffer {
  const body: Buffer[] = [Buffer.from([3, 3]), Buffer.alloc(32), Buffer.from([0]), Buffer.from([0, 2, 0x13, 0x01]), Buffer.from([1, 0])];
  if (extensions !== null) {
    const exts = Buffer.concat(extensions);
    body.push(u16(exts.length), exts);
  }
  const hello = Buffer.concat(body);
  const handshake = Buffer.concat([Buffer.from([1, hello.length >> 16, (hello.length >> 8) & 0xff, hello.length & 0xff]), hello]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(handshake.length), handshake]);
}
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function sniExtension(...names: string[]): Buffer {
  const list = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([0]), u16(n.length), Buffer.from(n, "latin1")])));
  const data = Buffer.concat([u16(list.length), list]);
  return Buffer.concat([u16(0), u16(data.length), data]);
}
const otherExtension = Buffer.concat([u16(0x2b), u16(3), Buffer.from([2, 3, 4])]);

describe("parseClientHello on real ClientHellos (node:tls)", () => {
  let tls13: Buffer;
  let tls12: Buffer;
  let noSni: Buffer;
  beforeAll(async () => {
    tls13 = await captureClientHello({ servername: "Pypi.Example.ORG" });
    tls12 = await captureClientHello({ servername: "api.example.com", maxVersion: "TLSv1.2" });
    noSni = await captureClientHello({});
  });

  it("reads the server name, lowercased", () => {
    expect(parseClientHello(tls13)).toEqual({ kind: "done", name: "pypi.example.org" });
    expect(parseClientHello(tls12)).toEqual({ kind: "done", name: "api.example.com" });
  });

  it("gives no name when the client sends no SNI (an IP literal host)", () => {
    expect(parseClientHello(noSni)).toEqual({ kind: "done", name: null });
  });

  it("asks for more on every prefix, byte by byte, then reads the name", () => {
    for (let n = 0; n < tls13.length; n++) expect(parseClientHello(tls13.subarray(0, n)).kind).toBe("need-more");
    expect(parseClientHello(tls13)).toEqual({ kind: "done", name: "pypi.example.org" });
  });

  it("reads a ClientHello split over several records", () => {
    const payloadLength = tls13.length - 5;
    for (const cuts of [[1], [3], [4], [40], [payloadLength - 1], [2, 10, 100, 101]]) {
      const split = splitRecords(tls13, cuts);
      expect(parseClientHello(split)).toEqual({ kind: "done", name: "pypi.example.org" });
      for (let n = 0; n < split.length; n++) expect(parseClientHello(split.subarray(0, n)).kind).toBe("need-more");
    }
  });

  it("reads the name with records that follow the ClientHello (ChangeCipherSpec, 0-RTT data)", () => {
    const ccs = Buffer.from([0x14, 3, 3, 0, 1, 1]);
    expect(parseClientHello(Buffer.concat([tls13, ccs]))).toEqual({ kind: "done", name: "pypi.example.org" });
  });

  it("refuses a ClientHello cut short by another record type", () => {
    const split = splitRecords(tls13, [50]);
    const firstRecord = split.subarray(0, 5 + 50);
    expect(parseClientHello(Buffer.concat([firstRecord, Buffer.from([0x17, 3, 3, 0, 1, 0])])).kind).toBe("invalid");
  });

  it("never throws on mutated ClientHellos", () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 3000; i++) {
      const m = Buffer.from(tls13);
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) m[Math.floor(rand() * m.length)] = Math.floor(rand() * 256);
      const cut = m.subarray(0, Math.floor(rand() * (m.length + 1)));
      expect(["need-more", "done", "invalid"]).toContain(parseClientHello(cut).kind);
    }
  });
});

describe("parseClientHello on crafted and garbage input", () => {
  it("reads a crafted ClientHello (the builder is right)", () => {
    expect(parseClientHello(craftedHello([otherExtension, sniExtension("a.example")]))).toEqual({ kind: "done", name: "a.example" });
    expect(parseClientHello(craftedHello(null))).toEqual({ kind: "done", name: null });
    expect(parseClientHello(craftedHello([]))).toEqual({ kind: "done", name: null });
  });

  it("refuses ambiguous names", () => {
    expect(parseClientHello(craftedHello([sniExtension("a.example"), sniExtension("b.example")]))).toMatchObject({ kind: "invalid", reason: "two server_name extensions" });
    expect(parseClientHello(craftedHello([sniExtension("a.example", "b.example")]))).toMatchObject({ kind: "invalid", reason: "two host names" });
    expect(parseClientHello(craftedHello([sniExtension("")]))).toMatchObject({ kind: "invalid" });
    expect(parseClientHello(craftedHello([sniExtension("a b.example")]))).toMatchObject({ kind: "invalid" });
    expect(parseClientHello(craftedHello([sniExtension("evil.example\0.good")]))).toMatchObject({ kind: "invalid" });
  });

  it("takes an IP literal SNI as no name", () => {
    expect(parseClientHello(craftedHello([sniExtension("203.0.113.9")]))).toEqual({ kind: "done", name: null });
  });

  it("refuses what is not a ClientHello", () => {
    expect(parseClientHello(Buffer.from("GET / HTTP/1.1\r\n")).kind).toBe("invalid");
    expect(parseClientHello(Buffer.from([0x16, 2, 0, 0, 4, 1, 0, 0, 0])).kind).toBe("invalid");
    expect(parseClientHello(Buffer.from([0x16, 3, 1, 0, 0])).kind).toBe("invalid");
    expect(parseClientHello(Buffer.from([0x16, 3, 1, 0x40, 1])).kind).toBe("invalid");
    expect(parseClientHello(Buffer.from([0x16, 3, 1, 0, 4, 2, 0, 0, 0])).kind).toBe("invalid");
    expect(parseClientHello(Buffer.from([0x16, 3, 1, 0, 4, 1, 0x10, 0, 0])).kind).toBe("invalid");
    // A length that runs past its container once the whole ClientHello is there.
    const bad = craftedHello([sniExtension("a.example")]);
    bad.writeUInt16BE(0xffff, bad.length - sniExtension("a.example").length + 2);
    expect(parseClientHello(bad).kind).toBe("invalid");
  });
});
