import { connect } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testApp } from "./test-support/test-app.js";

// The HTTP layer over a real socket: what a connection looks like after a refused body, a body that never
// comes, and a client that leaves.
const logged: { level: number; msg: string }[] = [];
const log = pino({ level: "debug" }, { write: (line: string) => void logged.push(JSON.parse(line) as { level: number; msg: string }) });
const { app, close } = testApp({ log, app: { bodyIdleMs: 300 } });
let server: ServerType;
let port = 0;
beforeAll(async () => {
  server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise((r) => server.once("listening", r));
  port = (server.address() as { port: number }).port;
});
afterAll(() => {
  server.close();
  close();
});

const head = "authorization: Bearer k-0123456789abcdef\r\nhost: x";

/** Writes raw bytes on one connection; resolves with everything read until the server closes it, or null if it never does. */
function exchange(parts: (string | Buffer)[], waitMs = 5_000): Promise<{ text: string; reset: boolean } | null> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    let reset = false;
    socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
    socket.on("error", () => (reset = true));
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text, reset });
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, waitMs);
    for (const p of parts) socket.write(p);
  });
}

const statusLines = (text: string) => text.match(/HTTP\/1\.1 \d{3} [A-Za-z ]+(?=\r\n)/g) ?? [];

describe("http connections", () => {
  it("a reply sent before the body was read says Connection: close, and the connection is closed cleanly", async () => {
    // A chunked JSON body over the 2 MiB limit: refused part-way, with the rest still on the wire.
    const chunk = Buffer.alloc(512 * 1024, "a");
    const body: Buffer[] = [];
    for (let i = 0; i < 6; i++) body.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n"));
    const r = await exchange([`POST /v1/sandboxes HTTP/1.1\r\n${head}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`, ...body, "0\r\n\r\n"]);
    expect(r).not.toBeNull();
    expect(statusLines(r!.text)).toEqual(["HTTP/1.1 413 Payload Too Large"]);
    expect(r!.text.toLowerCase()).toContain("connection: close");
    expect(r!.text.toLowerCase()).not.toContain("keep-alive");
  });

  it("a complete request keeps the connection alive for the next one", async () => {
    const r = await exchange([`GET /healthz HTTP/1.1\r\n${head}\r\n\r\nGET /healthz HTTP/1.1\r\n${head}\r\nconnection: close\r\n\r\n`]);
    expect(statusLines(r!.text)).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]);
  });

  it("a Content-Length larger than the body sent gets 400 once the body stalls, not silence", async () => {
    const r = await exchange([`POST /v1/sandboxes HTTP/1.1\r\n${head}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{}`]);
    expect(r).not.toBeNull();
    expect(statusLines(r!.text)).toEqual(["HTTP/1.1 400 Bad Request"]);
    expect(r!.text).toMatch(/"code":"invalid_request".*stalled.*after 2 of the 100/);
    expect(r!.text.toLowerCase()).toContain("connection: close");
  });

  it("logs a client that leaves mid-body at debug level, not as an error", async () => {
    logged.length = 0;
    const socket = connect(port, "127.0.0.1");
    socket.write(`PUT /v1/sandboxes/sbx_none/files?path=/x HTTP/1.1\r\n${head}\r\ncontent-length: 1000\r\n\r\n${"x".repeat(10)}`);
    await new Promise((r) => setTimeout(r, 100));
    socket.destroy();
    const body = `{"path":"/x"}`;
    const late = connect(port, "127.0.0.1");
    late.write(`POST /v1/sandboxes/sbx_none/files/mkdir HTTP/1.1\r\n${head}\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n${body}`);
    await new Promise((r) => setTimeout(r, 50));
    late.destroy();
    await new Promise((r) => setTimeout(r, 500));
    expect(logged.filter((l) => l.level >= 50)).toEqual([]);
    expect(logged.some((l) => l.msg === "client went away mid-request")).toBe(true);
  });
});
