import { describe, expect, it } from "vitest";
import { parseHttpHead } from "./http-host.js";

const head = (s: string) => parseHttpHead(Buffer.from(s, "latin1"));

describe("parseHttpHead", () => {
  it.each([
    ["GET / HTTP/1.1\r\nHost: Example.COM\r\n\r\n", "example.com"],
    ["GET / HTTP/1.1\r\nhost:example.com:8080\r\n\r\n", "example.com"],
    ["POST /x HTTP/1.0\r\nUser-Agent: a\r\nHOST:  pypi.org.  \r\nContent-Length: 3\r\n\r\nabc", "pypi.org"],
    ["GET http://files.example.com:80/a HTTP/1.1\r\nHost: files.example.com\r\n\r\n", "files.example.com"],
    ["GET http://user@files.example.com/a HTTP/1.1\r\n\r\n", "files.example.com"],
  ])("reads the host of %j", (text, host) => {
    expect(head(text)).toEqual({ kind: "done", host });
  });

  it.each([
    ["no Host (HTTP/1.0)", "GET / HTTP/1.0\r\n\r\n"],
    ["IPv4 literal", "GET / HTTP/1.1\r\nHost: 203.0.113.4:80\r\n\r\n"],
    ["IPv6 literal", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n"],
    ["empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n"],
  ])("gives no host for %s", (_name, text) => {
    expect(head(text)).toEqual({ kind: "done", host: null });
  });

  it("asks for more until the blank line, on every prefix", () => {
    const text = "GET /index.html HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n";
    for (let n = 0; n < text.length; n++) expect(head(text.slice(0, n)).kind).toBe("need-more");
    expect(head(text)).toEqual({ kind: "done", host: "a.example" });
  });

  it.each([
    ["binary", "\x00\x01\x02"],
    ["lowercase method", "get / HTTP/1.1\r\n"],
    ["SSH banner", "SSH-2.0-OpenSSH_9.2\r\n"],
    ["HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
    ["long method", "ABCDEFGHIJKLMNOPQRS / HTTP/1.1\r\n"],
    ["a line that is no request line", "HELLO\r\n"],
  ])("says %s is some other protocol", (_name, text) => {
    expect(head(text).kind).toBe("other");
  });

  it.each([
    ["two Host headers", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"],
    ["a folded line", "GET / HTTP/1.1\r\nHost: a.example\r\n b.example\r\n\r\n"],
    ["a malformed header", "GET / HTTP/1.1\r\nHost a.example\r\n\r\n"],
    ["a Host that is no name", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"],
    ["a Host with a path", "GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n"],
    ["a port out of range", "GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n"],
    ["a URI host that differs", "GET http://b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"],
    ["a NUL in the Host", "GET / HTTP/1.1\r\nHost: a.example\0.b\r\n\r\n"],
  ])("refuses %s", (_name, text) => {
    expect(head(text).kind).toBe("invalid");
  });
});
