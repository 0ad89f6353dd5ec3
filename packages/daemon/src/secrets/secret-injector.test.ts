import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxOnNetwork } from "../network/types.js";
import { Database } from "../store/database.js";
import { CertificateAuthority } from "./certificate-authority.js";
import { makePlaceholder } from "./placeholders.js";
import { SecretsKey } from "./secret-crypto.js";
import { createSecretInterceptor } from "./secret-injector.js";
import { SecretStore } from "./secret-store.js";
import { makeTestCerts, startProxy, startUpstream, type TestCerts, type TestUpstream } from "./test-upstream.js";

const HOST = "api.test";
const VALUE = "sk-REAL-VALUE-7f3a9c1e5b";
const policy = { internet: true, allowOut: [], denyOut: [] };

interface Reply {
  status: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

describe("secret interceptor", () => {
  let dir: string;
  let db: Database;
  let store: SecretStore;
  let ca: CertificateAuthority;
  let realCerts: TestCerts;
  let badCerts: TestCerts;
  let wrongNameCerts: TestCerts;
  const logged: string[] = [];
  const log = pino({ level: "trace" }, { write: (line: string) => void logged.push(line) });
  const placeholder = makePlaceholder("API_TOKEN");
  const otherPlaceholder = makePlaceholder("OTHER_TOKEN");
  const sandbox: SandboxOnNetwork = { id: "sbx_0000000000000001", address: "10.200.0.2", policy, placeholders: { API_TOKEN: placeholder, OTHER_TOKEN: otherPlaceholder } };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "stasis-inject-"));
    db = new Database(join(dir, "stasis.db"));
    store = new SecretStore(db, new SecretsKey(join(dir, "secrets.key")));
    store.put({ name: "API_TOKEN", value: VALUE, hosts: [HOST] });
    store.put({ name: "OTHER_TOKEN", value: "sk-OTHER-VALUE-0000", hosts: ["other.example"] });
    ca = await CertificateAuthority.open(join(dir, "ca"));
    mkdirSync(join(dir, "real"));
    mkdirSync(join(dir, "bad"));
    mkdirSync(join(dir, "wrong"));
    wrongNameCerts = makeTestCerts(join(dir, "wrong"), "wrong.test");
    realCerts = makeTestCerts(join(dir, "real"), HOST);
    badCerts = makeTestCerts(join(dir, "bad"), HOST, true);
  });
  afterAll(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const interceptor = (upstreamCa?: string) => createSecretInterceptor({ store, ca, audit: (u) => store.recordUse(u), logger: log, ...(upstreamCa ? { upstreamCa } : {}) });

  /** One request through the proxy at `port` (TLS trusting `trust`, as a sandbox trusts the daemon's CA). */
  function send(port: number, options: { tls: boolean; trust?: string; agent?: HttpAgent; method?: string; headers?: Record<string, string>; body?: Buffer }): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const common = { host: "127.0.0.1", port, method: options.method ?? "GET", path: "/v1/things?x=1", headers: { host: HOST, ...options.headers }, agent: options.agent };
      const req = options.tls ? httpsRequest({ ...common, servername: HOST, ...(options.trust ? { ca: options.trust } : {}) }) : httpRequest(common);
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on("error", reject);
      req.end(options.body);
    });
  }

  async function withUpstream<T>(certs: TestCerts | undefined, fn: (up: TestUpstream) => Promise<T>): Promise<T> {
    const up = await startUpstream(certs);
    try {
      return await fn(up);
    } finally {
      await up.close();
    }
  }

  it("puts the value into the headers of HTTPS requests to the secret's host, over one kept-alive connection each way", async () => {
    await withUpstream(realCerts, async (up) => {
      const proxy = await startProxy(interceptor(realCerts.caPem), { sandbox, host: HOST, port: up.port, tls: true });
      const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
      try {
        const before = store.uses({ sandboxId: sandbox.id }).length;
        // The body carries the placeholder too, and a byte of every value: it must arrive exactly as sent.
        const body = Buffer.concat([Buffer.from(`{"token":"${placeholder}"}`), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]);
        const first = await send(proxy.port, { tls: true, trust: ca.certificatePem, agent, method: "POST", headers: { authorization: `Bearer ${placeholder}`, "x-both": `${placeholder}|${placeholder}` }, body });
        const second = await send(proxy.port, { tls: true, trust: ca.certificatePem, agent, headers: { authorization: `Bearer ${placeholder}` } });

        expect(first.status).toBe(200);
        expect(up.seen[0]).toMatchObject({ method: "POST", url: "/v1/things?x=1" });
        expect(up.seen[0]!.headers.authorization).toBe(`Bearer ${VALUE}`);
        expect(up.seen[0]!.headers["x-both"]).toBe(`${VALUE}|${VALUE}`);
        expect(up.seen[0]!.headers.host).toBe(HOST);
        expect(up.seen[0]!.body.equals(body)).toBe(true);
        expect(first.body.equals(body)).toBe(true);
        expect(up.seen[1]!.headers.authorization).toBe(`Bearer ${VALUE}`);
        // The host echoed the value in a header: the sandbox sees the placeholder there, and the value nowhere.
        expect(first.headers["x-echo-authorization"]).toBe(`Bearer ${placeholder}`);
        for (const reply of [first, second]) expect(JSON.stringify(reply.headers) + reply.body.toString("latin1")).not.toContain(VALUE);

        expect(proxy.taken).toEqual([true]);
        expect(up.connections).toBe(1);
        const uses = store.uses({ sandboxId: sandbox.id });
        expect(uses.length - before).toBe(2);
        expect(uses[0]).toMatchObject({ sandboxId: sandbox.id, secret: "API_TOKEN", host: HOST });
        expect(logged.join("\n")).not.toContain(VALUE);
      } finally {
        agent.destroy();
        await proxy.close();
      }
    });
  });

  it("does the same for plain HTTP, and joins an Upgrade's two sockets", async () => {
    await withUpstream(undefined, async (up) => {
      const proxy = await startProxy(interceptor(), { sandbox, host: HOST, port: up.port, tls: false });
      try {
        const reply = await send(proxy.port, { tls: false, method: "PUT", headers: { authorization: `Bearer ${placeholder}`, "x-other": otherPlaceholder }, body: Buffer.from("plain body") });
        expect(reply.status).toBe(200);
        expect(reply.body.toString()).toBe("plain body");
        expect(up.seen[0]!.headers.authorization).toBe(`Bearer ${VALUE}`);
        // Another secret's placeholder, to a host that is not its own: out as it is, and logged.
        expect(up.seen[0]!.headers["x-other"]).toBe(otherPlaceholder);
        expect(logged.some((l) => l.includes("OTHER_TOKEN") && l.includes("not its secret's"))).toBe(true);

        const echoed = await new Promise<string>((resolve, reject) => {
          const req = httpRequest({ host: "127.0.0.1", port: proxy.port, headers: { host: HOST, connection: "Upgrade", upgrade: "echo", authorization: `Bearer ${placeholder}` } });
          req.on("upgrade", (res, socket) => {
            expect(res.statusCode).toBe(101);
            socket.once("data", (d: Buffer) => {
              socket.destroy();
              resolve(d.toString());
            });
            socket.write("ping");
          });
          req.on("error", reject);
          req.end();
        });
        expect(echoed).toBe("ping");
        expect(up.seen[1]!.headers.authorization).toBe(`Bearer ${VALUE}`);
      } finally {
        await proxy.close();
      }
    });
  });

  it("leaves alone connections to other hosts and sandboxes without the secret", async () => {
    await withUpstream(realCerts, async (up) => {
      const other = await startProxy(interceptor(realCerts.caPem), { sandbox, host: "other.test", port: up.port, tls: true });
      const noSecret = await startProxy(interceptor(realCerts.caPem), { sandbox: { ...sandbox, placeholders: {} }, host: HOST, port: up.port, tls: true });
      try {
        // Spliced through: the sandbox talks to the real host (its certificate), and the placeholder arrives as it is.
        const reply = await send(other.port, { tls: true, trust: realCerts.caPem, headers: { authorization: `Bearer ${placeholder}` } });
        expect(reply.status).toBe(200);
        expect(up.seen.at(-1)!.headers.authorization).toBe(`Bearer ${placeholder}`);
        await send(noSecret.port, { tls: true, trust: realCerts.caPem });
        expect([other.taken, noSecret.taken]).toEqual([[false], [false]]);
      } finally {
        await other.close();
        await noSecret.close();
      }
    });
  });

  it("answers 502, sending nothing, when the host's certificate does not verify", async () => {
    await withUpstream(badCerts, async (up) => {
      const proxy = await startProxy(interceptor(realCerts.caPem), { sandbox, host: HOST, port: up.port, tls: true });
      try {
        const before = store.uses().length;
        const reply = await send(proxy.port, { tls: true, trust: ca.certificatePem, headers: { authorization: `Bearer ${placeholder}` } });
        expect(reply.status).toBe(502);
        expect(reply.body.toString()).toMatch(/^stasis egress: the TLS certificate of api\.test failed verification \(DEPTH_ZERO_SELF_SIGNED_CERT\); the request was not sent/);
        expect(up.seen).toEqual([]);
        expect(store.uses().length).toBe(before);
        expect(logged.some((l) => l.includes("failed verification"))).toBe(true);
      } finally {
        await proxy.close();
      }
    });
  });

  it("answers 502 when the host's certificate, from a trusted CA, names another host", async () => {
    await withUpstream(wrongNameCerts, async (up) => {
      const proxy = await startProxy(interceptor(wrongNameCerts.caPem), { sandbox, host: HOST, port: up.port, tls: true });
      try {
        const reply = await send(proxy.port, { tls: true, trust: ca.certificatePem, headers: { authorization: `Bearer ${placeholder}` } });
        expect(reply.status).toBe(502);
        expect(reply.body.toString()).toMatch(/failed verification \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
        expect(up.seen).toEqual([]);
      } finally {
        await proxy.close();
      }
    });
  });

  it("answers malformed or odd requests from the sandbox with an HTTP error, never a throw", async () => {
    await withUpstream(undefined, async (up) => {
      const proxy = await startProxy(interceptor(), { sandbox, host: HOST, port: up.port, tls: false });
      const raw = (bytes: Buffer) =>
        new Promise<string>((resolve, reject) => {
          const socket = connect(proxy.port, "127.0.0.1");
          const chunks: Buffer[] = [];
          socket.on("data", (c: Buffer) => chunks.push(c));
          socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
          socket.on("error", reject);
          socket.end(bytes);
        });
      try {
        const odd = await raw(Buffer.from(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-Odd: a\x7fb\r\nAuthorization: Bearer ${placeholder}\r\n\r\n`, "latin1"));
        expect(odd).toMatch(/^HTTP\/1\.1 400 /);
        expect(await raw(Buffer.from("NOT HTTP AT ALL\r\n\r\n"))).toMatch(/^HTTP\/1\.1 400 /);
        expect(await raw(Buffer.from(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-Big: ${"a".repeat(70 * 1024)}\r\n\r\n`))).toMatch(/^HTTP\/1\.1 (400|431) /);
        expect(up.seen.filter((s) => s.headers["x-odd"] !== undefined)).toEqual([]);
      } finally {
        await proxy.close();
      }
    });
  });

  it("refuses a request for another host on the connection, and one whose secret cannot be decrypted", async () => {
    await withUpstream(undefined, async (up) => {
      const proxy = await startProxy(interceptor(), { sandbox, host: HOST, port: up.port, tls: false });
      const keyless = createSecretInterceptor({ store: new SecretStore(db, new SecretsKey(join(dir, "lost.key"))), ca, audit: () => undefined, logger: log });
      const lost = await startProxy(keyless, { sandbox, host: HOST, port: up.port, tls: false });
      try {
        const misdirected = await send(proxy.port, { tls: false, headers: { host: "elsewhere.test", authorization: `Bearer ${placeholder}` } });
        expect(misdirected.status).toBe(421);
        const undecryptable = await send(lost.port, { tls: false, headers: { authorization: `Bearer ${placeholder}` } });
        expect(undecryptable.status).toBe(502);
        expect(undecryptable.body.toString()).toMatch(/secrets for api\.test cannot be used/);
        expect(up.seen).toEqual([]);
      } finally {
        await proxy.close();
        await lost.close();
      }
    });
  });
});
