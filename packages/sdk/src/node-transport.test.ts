import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { randomBytes } from "node:crypto";
import { defaultFetch, wholeBody } from "./node-transport.js";

/** What /blob serves: with its length, or chunked (?chunked), or cut short (?cut). */
const BLOB = randomBytes(5 * 1024 * 1024 + 3);

let server: http.Server;
let base: string;
const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
/** Ends the reply /stream holds open. */
let release: () => void = () => {};

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => (body += d));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const url = new URL(req.url!, "http://x");
      if (url.pathname === "/json") {
        res.setHeader("content-type", "application/json");
        res.setHeader("set-cookie", ["a=1", "b=2"]);
        res.end(JSON.stringify({ echoed: body, method: req.method }));
      } else if (url.pathname === "/stream") {
        // One line now, the next only when the test says: a body that really streams.
        res.setHeader("content-type", "application/x-ndjson");
        res.write('{"n":1}\n');
        release = () => res.end('{"n":2}\n');
      } else if (url.pathname === "/blob") {
        if (url.searchParams.has("chunked")) {
          res.write(BLOB.subarray(0, 1000));
          res.end(BLOB.subarray(1000));
        } else if (url.searchParams.has("cut")) {
          res.writeHead(200, { "content-length": String(BLOB.length) });
          res.write(BLOB.subarray(0, 1000), () => res.destroy());
        } else res.end(BLOB);
      } else if (url.pathname === "/empty") {
        res.statusCode = 204;
        res.end();
      } else if (url.pathname === "/moved") {
        res.statusCode = 307;
        res.setHeader("location", "/json");
        res.end();
      } else {
        res.statusCode = 404;
        res.end(JSON.stringify({ error: { code: "not_found" } }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
afterEach(() => {
  seen.length = 0;
  vi.unstubAllGlobals();
});

describe("the SDK's Node transport", () => {
  it("sends the method, headers and body, and gives back status, headers and body as fetch would", async () => {
    const res = await defaultFetch(`${base}/json`, { method: "POST", headers: { authorization: "Bearer k", "content-type": "application/json" }, body: '{"x":"é"}' });
    expect(res.status).toBe(200);
    expect(res.ok).toBe(true);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect(await res.json()).toEqual({ echoed: '{"x":"é"}', method: "POST" });
    expect(seen[0]).toMatchObject({ method: "POST", headers: { authorization: "Bearer k", "content-length": String(Buffer.byteLength('{"x":"é"}')) } });
  });

  it("takes byte bodies, and reports error statuses as replies, not throws", async () => {
    const res = await defaultFetch(`${base}/nowhere`, { method: "PUT", body: new TextEncoder().encode("bytes") });
    expect(res.status).toBe(404);
    expect(res.ok).toBe(false);
    expect(await res.json()).toEqual({ error: { code: "not_found" } });
    expect(seen[0]?.body).toBe("bytes");
  });

  it("streams a body: the first line is readable before the reply has ended", async () => {
    const res = await defaultFetch(`${base}/stream`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('{"n":1}\n');
    release();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    expect(rest).toBe('{"n":2}\n');
  });

  it("reads a whole body at once, with or without its length, and says when it was cut", async () => {
    for (const query of ["", "?chunked"]) {
      const whole = await wholeBody(await defaultFetch(`${base}/blob${query}`));
      expect(whole?.constructor).toBe(Uint8Array);
      expect(whole && Buffer.from(whole).equals(BLOB), query).toBe(true);
      expect(whole?.buffer.byteLength).toBe(BLOB.length);
    }
    await expect(wholeBody(await defaultFetch(`${base}/blob?cut`))).rejects.toThrow();
  });

  it("leaves a body already read as a stream, or a Response of another transport, to the usual reads", async () => {
    const res = await defaultFetch(`${base}/blob`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(wholeBody(res)).toBeNull();
    let have = first.value!.length;
    for (let r = await reader.read(); !r.done; r = await reader.read()) have += r.value.length;
    expect(have).toBe(BLOB.length);
    expect(wholeBody(new Response("x"))).toBeNull();
    // Taken whole, the web stream is empty rather than a second copy.
    const taken = await defaultFetch(`${base}/json`);
    expect(Buffer.from((await wholeBody(taken))!).toString()).toContain("echoed");
    expect(await taken.text()).toBe("");
  });

  it("gives a 204 a null body", async () => {
    const res = await defaultFetch(`${base}/empty`, { method: "DELETE" });
    expect(res.status).toBe(204);
    expect(res.body).toBeNull();
  });

  it("rejects with the signal's reason when aborted before the reply or while the body is read", async () => {
    const early = new AbortController();
    early.abort(new Error("early"));
    await expect(defaultFetch(`${base}/json`, { signal: early.signal })).rejects.toThrow("early");

    const late = new AbortController();
    const res = await defaultFetch(`${base}/stream`, { signal: late.signal });
    const reader = res.body!.getReader();
    await reader.read();
    late.abort(new Error("late"));
    await expect(reader.read()).rejects.toThrow("late");
    release();
  });

  it("leaves redirects to fetch, which follows them", async () => {
    const res = await defaultFetch(`${base}/moved`, { method: "GET" });
    expect(res.status).toBe(200);
    expect(res.redirected).toBe(true);
    expect(await res.json()).toMatchObject({ method: "GET" });
  });

  it("uses a fetch patched after import (mocks, instrumentation), and fetch for bodies it does not send itself", async () => {
    const mock = vi.fn(async () => new Response("mocked"));
    vi.stubGlobal("fetch", mock);
    expect(await (await defaultFetch(`${base}/json`)).text()).toBe("mocked");
    vi.unstubAllGlobals();

    // A stream body goes through fetch (the Node path takes strings and bytes only) and arrives whole.
    const body = new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode("streamed")), c.close()) });
    const res = await defaultFetch(`${base}/json`, { method: "POST", body, duplex: "half" } as RequestInit);
    expect(await res.json()).toMatchObject({ echoed: "streamed" });
  });

  it("fails a refused connection with a rejection that names the cause", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expect(defaultFetch(`http://127.0.0.1:${port}/`)).rejects.toThrow(/ECONNREFUSED/);
  });
});
