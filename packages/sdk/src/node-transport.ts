import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { Readable } from "node:stream";

/**
 * The SDK's default transport under Node.js: `fetch` semantics (a `Response` whose body streams) over
 * `node:http` with kept-alive connections. Node's built-in fetch (undici) costs about a millisecond more
 * per call than its own HTTP client when calls are spaced out as an agent makes them (measured against the
 * daemon: ~9.2 ms against ~8.2 ms for a warm code run), which is a tenth of a warm call.
 *
 * Only what it can do exactly as fetch would takes this path: no body, or a string or byte body (a stream
 * body, a Blob, FormData and the like go to fetch), http or https, and a reply that is not a redirect (a
 * redirect is sent again through fetch, which follows it). A `fetch` given in the options, or a
 * `globalThis.fetch` replaced after the SDK loaded (mocks, instrumentation), is always used instead.
 */

const NATIVE_FETCH = globalThis.fetch;
// Idle kept-alive sockets are unref'd by Node's agents, so they never hold a process open.
const agents = { "http:": new http.Agent({ keepAlive: true }), "https:": new https.Agent({ keepAlive: true }) };
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** fetch for the SDK: the Node transport where it applies, `globalThis.fetch` (looked up now) otherwise. */
export function defaultFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  if (globalThis.fetch !== NATIVE_FETCH || typeof input !== "string" || !plainBody(init?.body)) return globalThis.fetch(input, init);
  const url = new URL(input);
  if (url.protocol !== "http:" && url.protocol !== "https:") return globalThis.fetch(input, init);
  return nodeRequest(url, init ?? {}).then((response) => response ?? globalThis.fetch(input, init));
}

function plainBody(body: RequestInit["body"]): body is string | Uint8Array | null | undefined {
  return body === undefined || body === null || typeof body === "string" || body instanceof Uint8Array;
}

/** The reply as a Response, or null for a redirect (fetch is to follow it). */
function nodeRequest(url: URL, init: RequestInit): Promise<Response | null> {
  const signal = init.signal ?? undefined;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const headers = new Headers(init.headers);
  const body = init.body as string | Uint8Array | null | undefined;
  if (body !== undefined && body !== null) headers.set("content-length", String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength));
  const method = (init.method ?? "GET").toUpperCase();
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, { method, headers: Object.fromEntries(headers), agent: agents[url.protocol as "http:" | "https:"], ...(signal ? { signal } : {}) }, (res) => {
      const status = res.statusCode ?? 0;
      if (REDIRECTS.has(status) && res.headers.location) {
        res.resume();
        resolve(null);
        return;
      }
      const replyHeaders = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (Array.isArray(value)) for (const v of value) replyHeaders.append(name, v);
        else if (value !== undefined) replyHeaders.set(name, value);
      }
      const empty = method === "HEAD" || NULL_BODY_STATUSES.has(status);
      if (empty) res.resume();
      // An abort while the body is read fails the read with the signal's reason, as fetch's does.
      if (signal && !empty) {
        const onAbort = () => res.destroy(signal.reason as Error);
        signal.addEventListener("abort", onAbort, { once: true });
        res.once("close", () => signal.removeEventListener("abort", onAbort));
      }
      const init = { status, statusText: res.statusMessage ?? "", headers: replyHeaders };
      resolve(empty ? new Response(null, init) : withNodeBody(res, init));
    });
    req.on("error", (err) => reject(signal?.aborted ? signal.reason : err));
    req.end(body ?? undefined);
  });
}

const WHOLE_BODY = Symbol("stasis.wholeBody");

/**
 * A Response whose body is read from the Node stream only when asked: as a web stream (the first read
 * starts it), or whole and at once by `wholeBody` (one buffer of the announced length, no web stream at
 * all), which costs the client about half the CPU of `arrayBuffer()` on a large file (100 MiB: ~150 ms).
 */
function withNodeBody(res: IncomingMessage, init: ResponseInit): Response {
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  let taken = false;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (taken) return controller.close();
        reader ??= (Readable.toWeb(res) as ReadableStream<Uint8Array>).getReader();
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel(reason) {
        if (reader) return reader.cancel(reason);
        res.destroy();
      },
    },
    // Nothing is pulled before a reader asks, so that `wholeBody` can still take the stream as it is.
    { highWaterMark: 0 },
  );
  const response = new Response(body, init);
  Object.defineProperty(response, WHOLE_BODY, {
    value: (): Promise<Uint8Array> | null => {
      if (taken || reader || body.locked) return null;
      taken = true;
      return readWhole(res);
    },
  });
  return response;
}

/**
 * The whole body of a reply from this transport, read straight from its Node stream; null for any other
 * Response or one whose body was already touched (then read it as usual).
 */
export function wholeBody(response: Response): Promise<Uint8Array> | null {
  const take = (response as unknown as Record<symbol, (() => Promise<Uint8Array> | null) | undefined>)[WHOLE_BODY];
  return take ? take() : null;
}

function readWhole(res: IncomingMessage): Promise<Uint8Array> {
  const announced = Number(res.headers["content-length"]);
  return new Promise((resolve, reject) => {
    // One buffer of the announced length, filled as chunks come; collected and joined when none is announced.
    // allocUnsafeSlow: a buffer of its own (never a slice of Node's shared pool, which `.buffer` would show).
    const whole = Number.isSafeInteger(announced) && announced >= 0 && announced <= 2 ** 31 ? Buffer.allocUnsafeSlow(announced) : null;
    const parts: Buffer[] = [];
    let have = 0;
    res.on("data", (chunk: Buffer) => {
      if (whole) chunk.copy(whole, have);
      else parts.push(chunk);
      have += chunk.length;
    });
    res.once("end", () => {
      if (whole && have !== whole.length) return reject(new Error(`the reply's body ended after ${have} of ${whole.length} bytes`));
      const out = whole ? new Uint8Array(whole.buffer, whole.byteOffset, whole.length) : new Uint8Array(have);
      if (!whole) parts.reduce((at, part) => (out.set(part, at), at + part.length), 0);
      resolve(out);
    });
    res.once("error", reject);
  });
}
