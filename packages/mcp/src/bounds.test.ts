import { describe, expect, it } from "vitest";
import { boundText, HeadTail, readUpTo } from "./bounds.js";
import { HostCheck, defaultAllowedHosts } from "./transports/host-check.js";
import { imageType, isText, mimeTypeOf } from "./mime.js";

describe("HeadTail", () => {
  it("keeps everything under the limit, whatever the pieces", () => {
    const kept = new HeadTail(10);
    for (const piece of ["ab", "cd", "", "efghij"]) kept.push(piece);
    expect(kept.text()).toBe("abcdefghij");
    expect(kept.truncated).toBe(false);
  });

  it("keeps the first and last halves of more, in pieces or whole, and counts what it left out", () => {
    const pieces = new HeadTail(10);
    for (const c of "0123456789abcdefghij") pieces.push(c);
    const whole = boundText("0123456789abcdefghij", 10);
    for (const text of [pieces.text(), whole.text]) expect(text).toBe("01234\n[... 10 characters left out: the output exceeded 10 characters ...]\nfghij");
    expect(pieces.truncated && whole.truncated).toBe(true);
  });
});

describe("readUpTo", () => {
  const stream = (chunks: string[]) => {
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks[pulled++];
        if (next === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(next));
      },
    });
    return { body, pulled: () => pulled };
  };

  it("stops pulling at the limit and says whether more was there", async () => {
    const s = stream(["abc", "def", "ghi", "jkl"]);
    const read = await readUpTo(s.body, 5);
    expect(new TextDecoder().decode(read.bytes)).toBe("abcde");
    expect(read.cut).toBe(true);
    expect(s.pulled()).toBeLessThanOrEqual(3);
    const exact = await readUpTo(stream(["abc", "de"]).body, 5);
    expect(exact.cut).toBe(false);
  });

  it("lets the first chunk choose the limit", async () => {
    const read = await readUpTo(stream(["IMG", "123456"]).body, (first) => (new TextDecoder().decode(first) === "IMG" ? 100 : 2));
    expect(new TextDecoder().decode(read.bytes)).toBe("IMG123456");
    expect(read.cut).toBe(false);
  });
});

describe("HostCheck (DNS rebinding)", () => {
  const check = new HostCheck([...defaultAllowedHosts("0.0.0.0"), "stasis.example.com"]);

  it("lets the local names and the configured ones through, with any port", () => {
    for (const host of ["localhost:7070", "127.0.0.1:7070", "[::1]:7070", "LOCALHOST", "stasis.example.com"]) expect(check.refusal(host, undefined), host).toBeNull();
    expect(check.refusal("localhost:7070", "http://localhost:3000")).toBeNull();
  });

  it("refuses other names in Host or Origin, a missing Host, odd Hosts and the null origin", () => {
    expect(check.refusal("attacker.example:7070", undefined)).toMatch(/^host 'attacker.example:7070' is not allowed/);
    expect(check.refusal("localhost:7070", "http://attacker.example")).toBe("origin 'http://attacker.example' is not allowed");
    expect(check.refusal("localhost:7070", "null")).toBe("origin 'null' is not allowed");
    for (const host of [undefined, "", "localhost/x", "user@localhost", "0.0.0.0"]) expect(check.refusal(host, undefined), String(host)).not.toBeNull();
  });

  it("adds a specific listen address, and '*' allows any name", () => {
    expect(defaultAllowedHosts("10.1.2.3")).toContain("10.1.2.3");
    expect(defaultAllowedHosts("fd00::1")).toContain("[fd00::1]");
    expect(new HostCheck(["*"]).refusal("anything.example", "http://else.example")).toBeNull();
  });
});

describe("mime", () => {
  it("knows images by their bytes, text by UTF-8 without NUL (a cut character is still text)", () => {
    expect(imageType(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBe("image/jpeg");
    expect(imageType(Buffer.from("RIFF\0\0\0\0WEBPVP8 "))).toBe("image/webp");
    expect(imageType(Buffer.from("hello"))).toBeNull();
    const euro = Buffer.from("price: €", "utf8");
    expect(isText(euro.subarray(0, euro.length - 1), true)).toBe(true);
    expect(isText(euro.subarray(0, euro.length - 1), false)).toBe(false);
    expect(isText(Buffer.from([104, 0, 105]), false)).toBe(false);
    expect(mimeTypeOf("/a/data.json", Buffer.from("{}"), true)).toBe("application/json");
    expect(mimeTypeOf("/a/blob", Buffer.from([0, 1]), false)).toBe("application/octet-stream");
  });
});
