import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { crc32, tableCrc32 } from "./crc32.js";

describe("crc32", () => {
  it("is CRC-32/IEEE (Go's crc32.ChecksumIEEE), with or without zlib's", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
    expect(tableCrc32(Buffer.from("123456789"))).toBe(0xcbf43926);
    const data = randomBytes(10_000);
    expect(tableCrc32(data)).toBe(crc32(data));
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });
});
