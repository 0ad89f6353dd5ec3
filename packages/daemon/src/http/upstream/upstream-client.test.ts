import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server, type ServerResponse } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from "node:net";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import type { ResponseHead } from "./response-reader.js";
import { UpstreamClient, type UpstreamRequest } from "./upstream-client.js";

interface Result {
  head: ResponseHead | null;
  body: Buffer;
  error: (Error & { code?: string }) | null;
  headSent: boolean;
  sockets: Socket[];
}

/**
 * Runs one exchange. The sink copies each view it takes at once (the client reuses its read buffer); when
 * `slow`, every other piece is held as the view itself and taken later, as a client's full socket would.
 */
function exchange(client: UpstreamClient, request: UpstreamRequest, options: { slow?: "alternate" | "all"; abandonAfter?: number; onEnd?: () => void } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const out: Result = { head: null, body: Buffer.alloc(0), error: null, headSent: false, sockets: [] };
    const pieces: Buffer[] = [];
    const held: Promise<void>[] = [];
    let n = 0;
    let received = 0;
    const abandon = client.exchange(
      request,
      {
        head: (head) => (out.head = head),
        body: (view, flushed) => {
          received += view.length;
          if (options.abandonAfter !== undefined && received >= options.abandonAfter) {
            setImmediate(() => {
              abandon();
              resolve({ ...out, body: Buffer.concat(pieces) });
            });
            pieces.push(Buffer.from(view));
            return true;
          }
          if (!options.slow || (options.slow === "alternate" && n++ % 2 === 0)) {
            pieces.push(Buffer.from(view));
            return true;
          }
          // Held, not copied, until "written": a read into the client's buffer before then would show.
          const at = pieces.push(Buffer.alloc(0)) - 1;
          held.push(
            new Promise((r) =>
              setTimeout(() => {
                pieces[at] = Buffer.from(view);
                flushed();
                r();
              }, 1),
            ),
          );
          return false;
        },
        end: () => {
          options.onEnd?.();
          void Promise.all(held).then(() => resolve({ ...out, body: Buffer.concat(pieces) }));
        },
        fail: (err, headSent) => resolve({ ...out, body: Buffer.concat(pieces), error: err, headSent }),
      },
      (socket) => out.sockets.push(socket),
    );
  });
}

const servers: (Server | TcpServer)[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.close(r), "closeAllConnections" in s && s.closeAllConnections()))));
});

async function listen<T extends Server | TcpServer>(server: T): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as AddressInfo).port;
}

const blob = randomBytes(3 * 1024 * 1024 + 17);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function get(port: number, path: string, extra: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { address: "127.0.0.1", port, method: "GET", path, headers: [["host", "sandbox"]], ...extra };
}

describe("the preview route's HTTP client", () => {
  it("carries a large body byte for byte while its reader is slow, and reuses kept-alive connections", async () => {
    let connections = 0;
    const server = createServer((req, res) => {
      if (req.url === "/blob") return res.end(blob);
      res.setHeader("content-type", "text/plain");
      res.write("chunked ");
      setTimeout(() => res.end("stream"), 5);
    });
    server.on("connection", () => connections++);
    const port = await listen(server);
    const idle: Socket[] = [];
    const client = new UpstreamClient({ onIdle: (s) => idle.push(s) });
    const big = await exchange(client, get(port, "/blob"), { slow: "alternate" });
    expect(big.error).toBeNull();
    expect(big.head?.status).toBe(200);
    expect(sha(big.body)).toBe(sha(blob));
    const chunked = await exchange(client, get(port, "/stream"));
    expect(chunked.body.toString()).toBe("chunked stream");
    expect(chunked.head?.rawHeaders).toContain("chunked");
    expect(connections).toBe(1);
    expect(idle).toHaveLength(2);
    expect(big.sockets[0]).toBe(chunked.sockets[0]);
    client.close();
  });

  it("keeps at most its limits of idle connections, per port and in all; a connection the server closed frees its place", async () => {
    // Each server answers once `n` requests are in, so a burst of n takes n connections.
    const burstServer = (n: number) => {
      const waiting: ServerResponse[] = [];
      return createServer((_req, res) => {
        waiting.push(res);
        if (waiting.length === n) for (const r of waiting.splice(0)) r.end("ok");
      });
    };
    const a = burstServer(3);
    const b = burstServer(2);
    const [portA, portB] = [await listen(a), await listen(b)];
    const idle: Socket[] = [];
    const client = new UpstreamClient({ onIdle: (s) => idle.push(s) }, { perTarget: 2, total: 3 });
    const burst = async (port: number, n: number) => {
      const results = await Promise.all(Array.from({ length: n }, () => exchange(client, get(port, "/"))));
      expect(results.map((r) => r.body.toString())).toEqual(Array(n).fill("ok"));
    };
    await burst(portA, 3);
    expect(idle).toHaveLength(2);
    // Two of A's are kept: B gets one place of the three.
    await burst(portB, 2);
    expect(idle).toHaveLength(3);
    // A's server closes its idle connections: their places go back, and B's next burst keeps two.
    a.closeIdleConnections();
    await new Promise((r) => setTimeout(r, 50));
    await burst(portB, 2);
    expect(idle).toHaveLength(5);
    client.close();
  });

  it("keeps a connection out of the pool until the client's socket has taken its last piece", async () => {
    let connections = 0;
    const server = createServer((req, res) => res.end(req.url === "/blob" ? blob : "small"));
    server.on("connection", () => connections++);
    const port = await listen(server);
    const client = new UpstreamClient({ onIdle: () => {} });
    let second: Promise<Result> | undefined;
    // The second request goes out while the first's last piece is still held by its (slow) client.
    const first = await exchange(client, get(port, "/blob"), { slow: "all", onEnd: () => (second = exchange(client, get(port, "/small"))) });
    expect(sha(first.body)).toBe(sha(blob));
    expect((await second!).body.toString()).toBe("small");
    expect(connections).toBe(2);
    client.close();
  });

  it("sends a body with its length or chunked, on a connection of its own", async () => {
    const server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on("data", (d: Buffer) => parts.push(d));
      req.on("end", () => res.end(JSON.stringify({ te: req.headers["transfer-encoding"] ?? null, length: req.headers["content-length"] ?? null, sha: sha(Buffer.concat(parts)), connection: req.headers.connection })));
    });
    const port = await listen(server);
    const client = new UpstreamClient({ onIdle: () => {} });
    const sized = await exchange(client, get(port, "/", { method: "PUT", body: { stream: Readable.from([blob]), length: blob.length } }));
    expect(JSON.parse(sized.body.toString())).toEqual({ te: null, length: String(blob.length), sha: sha(blob), connection: "close" });
    const pieces = [blob.subarray(0, 1000), blob.subarray(1000, 1_000_000), blob.subarray(1_000_000)];
    const streamed = await exchange(client, get(port, "/", { method: "POST", body: { stream: Readable.from(pieces), length: null } }));
    expect(JSON.parse(streamed.body.toString())).toEqual({ te: "chunked", length: null, sha: sha(blob), connection: "close" });
  });

  it("retries once on a fresh connection when a kept-alive one was closed under the request", async () => {
    let connections = 0;
    const server = createTcpServer((socket) => {
      const mine = ++connections;
      let requests = 0;
      socket.on("data", () => {
        // The first connection answers one request, then closes when the second arrives (its keep-alive expired).
        if (mine === 1 && ++requests === 2) return void socket.destroy();
        socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
      });
    });
    const port = await listen(server);
    const client = new UpstreamClient({ onIdle: () => {} });
    expect((await exchange(client, get(port, "/"))).body.toString()).toBe("ok");
    const second = await exchange(client, get(port, "/"));
    expect(second.error).toBeNull();
    expect(second.body.toString()).toBe("ok");
    expect(second.sockets).toHaveLength(2);
    expect(connections).toBe(2);
    client.close();
  });

  it("fails with the cause: nothing listening, a cut body, a malformed answer", async () => {
    const closed = createTcpServer();
    const free = await listen(closed);
    await new Promise((r) => closed.close(r));
    servers.splice(servers.indexOf(closed), 1);
    const client = new UpstreamClient({ onIdle: () => {} });
    const refused = await exchange(client, get(free, "/"));
    expect(refused.error?.code).toBe("ECONNREFUSED");
    expect(refused.headSent).toBe(false);

    const cutter = createTcpServer((socket) => socket.once("data", () => socket.end("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly some")));
    const cut = await exchange(client, get(await listen(cutter), "/"));
    expect(cut.error?.message).toMatch(/in the middle of its response/);
    expect(cut.headSent).toBe(true);
    expect(cut.body.toString()).toBe("only some");

    const liar = createTcpServer((socket) => socket.once("data", () => socket.write("HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n")));
    const bad = await exchange(client, get(await listen(liar), "/"));
    expect(bad.error?.message).toMatch(/Content-Length/);
    expect(bad.headSent).toBe(false);
  });

  it("closes the connection when the exchange is abandoned in the middle of a body", async () => {
    let serverSaw: Promise<void> = Promise.resolve();
    const server = createServer((_req, res) => {
      serverSaw = new Promise((r) => res.once("close", r));
      res.writeHead(200, { "content-length": String(blob.length * 10) });
      const pump = () => {
        while (res.write(blob)) if (res.destroyed) return;
        res.once("drain", pump);
      };
      pump();
    });
    const port = await listen(server);
    const client = new UpstreamClient({ onIdle: () => {} });
    const partial = await exchange(client, get(port, "/"), { abandonAfter: 100_000 });
    expect(partial.sockets[0]?.destroyed).toBe(true);
    await serverSaw;
    // The next request gets a new connection, and a whole answer.
    server.removeAllListeners("request");
    server.on("request", (_req, res) => res.end("fresh"));
    expect((await exchange(client, get(port, "/"))).body.toString()).toBe("fresh");
  });
});
