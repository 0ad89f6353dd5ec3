import { randomBytes } from "node:crypto";
import { connect, createServer } from "node:net";
import type { ResolvedNetworkPolicy } from "@stasis/protocol";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Guardrails } from "./egress-decision.js";
import { startEgressProxy, type EgressProxy, type EgressProxyOptions } from "./egress-proxy.js";
import {
  echoTlsServer, halfCloseServer, idleConnection, listen, logLines, memoryLogger, namedHttpServer, rawExchange, tlsExchange,
} from "./test-support/proxy-fixtures.js";
import { captureClientHello, selfSignedCert, splitRecords } from "./test-support/tls-fixtures.js";
import type { InterceptContext, SandboxOnNetwork } from "./types.js";

/**
 * The proxy end to end on loopback. The "sandbox" is 127.0.0.1 (the lookup says so); the names it asks
 * for resolve (through a stub) to 127.0.0.2, where the real servers listen; 127.0.0.3 has decoys on the
 * same ports, standing for where a sandbox dialled with a forged name. Loopback is opened in the
 * guardrails by their test-only option.
 */
const NAMES: Record<string, string[]> = {
  "allowed.test": ["127.0.0.2"], "other.test": ["127.0.0.2"], "secret.test": ["127.0.0.2"], "denied.test": ["127.0.0.2"],
  "meta.test": ["169.254.169.254"], "decoy.test": ["127.0.0.3"], "multi.test": ["169.254.169.254", "127.0.0.4", "127.0.0.2"],
};
const cert = selfSignedCert(["allowed.test", "other.test", "secret.test", "denied.test"]);
const guardrails = new Guardrails({ sandboxRange: "10.250.0.0/16", hostAddresses: [], opened: ["127.0.0.0/8"], testOnlyOpenLoopback: true });

const get = (host: string, extra = "") => `GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n${extra}\r\n`;

describe("the egress proxy", () => {
  const http = namedHttpServer("real");
  const decoyHttp = namedHttpServer("decoy");
  const tls = echoTlsServer("real", cert);
  const decoyTls = echoTlsServer("decoy", cert);
  let policy: ResolvedNetworkPolicy;
  const sandbox = (): SandboxOnNetwork => ({ id: "sb-1", address: "127.0.0.1", policy, placeholders: {} });
  let original: { address: string; port: number } | null = null;
  let originalAsked = 0;
  let intercept: ((ctx: InterceptContext) => boolean) | undefined;
  const log = memoryLogger();
  const proxies: EgressProxy[] = [];
  let proxy: EgressProxy;

  const start = async (extra: Partial<EgressProxyOptions> = {}) => {
    const p = await startEgressProxy({
      host: "127.0.0.1", httpPort: 0, tlsPort: 0, logger: log.logger, guardrails,
      lookup: (src) => (src === "127.0.0.1" ? sandbox() : undefined),
      resolve: async (name) => {
        const a = NAMES[name];
        if (a === undefined) throw new Error("ENOTFOUND");
        return a;
      },
      dialPorts: { http: http.port, tls: tls.port },
      originalDestination: async () => {
        originalAsked++;
        return original;
      },
      interceptor: (ctx) => intercept?.(ctx) ?? false,
      peekTimeoutMs: 2000,
      ...extra,
    });
    proxies.push(p);
    return p;
  };

  beforeAll(async () => {
    await listen(http, "127.0.0.2");
    await listen(decoyHttp, "127.0.0.3", http.port);
    await listen(tls, "127.0.0.2");
    await listen(decoyTls, "127.0.0.3", tls.port);
    proxy = await start();
  });
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    for (const s of [http, decoyHttp, tls, decoyTls]) s.close();
  });
  beforeEach(() => {
    policy = { internet: false, allowOut: ["allowed.test", "secret.test"], denyOut: [] };
    original = null;
    originalAsked = 0;
    intercept = undefined;
  });

  it("carries an allowed HTTP request both ways and counts the bytes", async () => {
    const before = proxy.proxyCounters()["sb-1"] ?? { bytesOut: 0, bytesIn: 0 };
    const body = "b".repeat(200_000);
    const reply = await rawExchange(proxy.httpPort, `POST /up HTTP/1.1\r\nHost: Allowed.test:8080\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(reply).toContain(`real saw host=Allowed.test:8080 body=${body.length}`);
    const after = proxy.proxyCounters()["sb-1"];
    expect(after && after.bytesOut - before.bytesOut).toBeGreaterThan(body.length);
    expect(after && after.bytesIn - before.bytesIn).toBe(reply.length);
  });

  it("carries an allowed TLS connection (the real server's certificate verifies) with a megabyte each way", async () => {
    const payload = randomBytes(1 << 20);
    const prefix = "real:allowed.test|";
    const got = await tlsExchange(proxy.tlsPort, { servername: "allowed.test", ca: cert.cert }, payload, prefix.length + payload.length);
    expect(got.subarray(0, prefix.length).toString()).toBe(prefix);
    expect(got.subarray(prefix.length).equals(payload)).toBe(true);
  });

  it("answers 403 naming the host to a second name on the same IP, and logs the denial without the payload", async () => {
    const before = http.requests;
    const reply = await rawExchange(proxy.httpPort, get("other.test", "Authorization: Bearer hunter2\r\n"));
    expect(reply).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(reply).toContain("egress to other.test is blocked");
    expect(http.requests).toBe(before);
    const line = logLines(log.text()).find((l) => l.msg === "egress denied" && l.host === "other.test");
    expect(line).toMatchObject({ level: 30, sandbox: "sb-1", host: "other.test", port: http.port, reason: "not in allowOut" });
    expect(log.text()).not.toContain("hunter2");
  });

  it("answers 403 to a denied name without resolving it, and to a name resolving to a guarded address", async () => {
    policy = { internet: true, allowOut: [], denyOut: ["denied.test"] };
    expect(await rawExchange(proxy.httpPort, get("denied.test"))).toContain("egress to denied.test is blocked by this sandbox's network policy (denyOut name)");
    expect(await rawExchange(proxy.httpPort, get("meta.test"))).toContain("(resolves to link-local (cloud metadata))");
    expect(await rawExchange(proxy.httpPort, get("nowhere.test"))).toMatch(/^HTTP\/1\.1 502 /);
  });

  it("skips guarded addresses of a name and tries the next address when one refuses", async () => {
    policy = { internet: true, allowOut: [], denyOut: [] };
    // 169.254.169.254 is never dialled; nothing listens on 127.0.0.4; 127.0.0.2 answers.
    expect(await rawExchange(proxy.httpPort, get("multi.test"))).toContain("real saw host=multi.test");
  });

  it("closes a TLS connection whose SNI is not allowed", async () => {
    const before = tls.connections;
    await expect(tlsExchange(proxy.tlsPort, { servername: "other.test", ca: cert.cert }, Buffer.from("x"), 1)).rejects.toThrow();
    expect(tls.connections).toBe(before);
  });

  it("dials the resolved name's address, never where the sandbox dialled (forged Host and SNI)", async () => {
    policy = { internet: true, allowOut: [], denyOut: [] };
    original = { address: "127.0.0.3", port: http.port };
    const [decoyRequests, decoyConnections] = [decoyHttp.requests, decoyTls.connections];
    expect(await rawExchange(proxy.httpPort, get("allowed.test"))).toContain("real saw host=allowed.test");
    const got = await tlsExchange(proxy.tlsPort, { servername: "allowed.test", ca: cert.cert }, Buffer.from("ping"), "real:allowed.test|ping".length);
    expect(got.toString()).toBe("real:allowed.test|ping");
    expect([decoyHttp.requests, decoyTls.connections, originalAsked]).toEqual([decoyRequests, decoyConnections, 0]);
  });

  it("decides a connection without a name by its original destination", async () => {
    policy = { internet: false, allowOut: ["127.0.0.3/32"], denyOut: [] };
    original = { address: "127.0.0.3", port: tls.port };
    // node:tls sends no SNI to an IP address.
    const got = await tlsExchange(proxy.tlsPort, { ca: cert.cert, checkServerIdentity: () => undefined }, Buffer.from("hi"), "decoy:-|hi".length);
    expect(got.toString()).toBe("decoy:-|hi");
    original = { address: "127.0.0.3", port: http.port };
    expect(await rawExchange(proxy.httpPort, "GET / HTTP/1.0\r\n\r\n")).toContain("decoy saw host= body=0");
    policy = { internet: false, allowOut: ["allowed.test"], denyOut: [] };
    expect(await rawExchange(proxy.httpPort, "GET / HTTP/1.0\r\n\r\n")).toMatch(/^HTTP\/1\.1 403 /);
    original = null;
    expect(await rawExchange(proxy.httpPort, "GET / HTTP/1.0\r\n\r\n")).toContain("original destination unknown");
    expect(originalAsked).toBe(4);
  });

  it("reads a ClientHello split over records and writes, and forwards it whole", async () => {
    const hello = splitRecords(await captureClientHello({ servername: "allowed.test" }), [3, 60]);
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port: proxy.tlsPort, noDelay: true });
      socket.on("error", reject);
      socket.once("data", (d: Buffer) => {
        socket.destroy();
        resolve(d);
      });
      socket.on("connect", () => {
        socket.write(hello.subarray(0, 5));
        setTimeout(() => socket.write(hello.subarray(5, 40)), 20);
        setTimeout(() => socket.write(hello.subarray(40)), 40);
      });
    });
    // The real server answered with its ServerHello: a handshake record.
    expect(reply[0]).toBe(0x16);
  });

  it("decides a client that sends nothing (the server speaks first) by address once the peek times out", async () => {
    const banner = createServer((s) => s.end("220 banner\r\n"));
    await listen(banner, "127.0.0.3");
    try {
      const quick = await start({ peekTimeoutMs: 100 });
      policy = { internet: false, allowOut: ["127.0.0.3/32"], denyOut: [] };
      original = { address: "127.0.0.3", port: (banner.address() as { port: number }).port };
      expect(await rawExchange(quick.tlsPort, Buffer.alloc(0))).toBe("220 banner\r\n");
    } finally {
      banner.close();
    }
  });

  it("answers 400 to a malformed HTTP head and closes garbage TLS", async () => {
    expect(await rawExchange(proxy.httpPort, "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 .*two Host headers/s);
    expect(await rawExchange(proxy.tlsPort, Buffer.from([0x16, 3, 1, 0, 4, 2, 0, 0, 0]))).toBe("");
  });

  it("hands allowed named connections to the interceptor, which may take them or leave them", async () => {
    const seen: Omit<InterceptContext, "client" | "sandbox">[] = [];
    intercept = (ctx) => {
      seen.push({ host: ctx.host, port: ctx.port, address: ctx.address, tls: ctx.tls, head: ctx.head });
      if (ctx.host !== "secret.test") return false;
      ctx.client.end("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nintercepted");
      return true;
    };
    const request = get("secret.test");
    const before = http.requests;
    expect(await rawExchange(proxy.httpPort, request)).toMatch(/intercepted$/);
    expect(http.requests).toBe(before);
    expect(await rawExchange(proxy.httpPort, get("allowed.test"))).toContain("real saw host=allowed.test");
    expect(seen[0]).toEqual({ host: "secret.test", port: http.port, address: "127.0.0.2", tls: false, head: Buffer.from(request) });
    expect(seen.map((s) => s.host)).toEqual(["secret.test", "allowed.test"]);
  });

  it("caps a sandbox's open connections", async () => {
    const capped = await start({ maxPerSandbox: 2 });
    const a = await idleConnection(capped.httpPort);
    const b = await idleConnection(capped.httpPort);
    const c = await idleConnection(capped.httpPort);
    await c.gone;
    expect([a.destroyed, b.destroyed]).toEqual([false, false]);
    expect(capped.proxyCounters()["sb-1"]).toMatchObject({ connections: 3, active: 2, denied: 1 });
    const reply = new Promise<string>((resolve) => {
      let text = "";
      a.on("data", (d: Buffer) => (text += d.toString()));
      a.on("close", () => resolve(text));
    });
    a.write(get("allowed.test"));
    expect(await reply).toContain("real saw host=allowed.test");
    b.destroy();
    await b.gone;
    // Once both are gone, the sandbox may connect again.
    expect(await rawExchange(capped.httpPort, get("allowed.test"))).toContain("real saw");
  });

  it("refuses connections from an address that is no sandbox", async () => {
    const stranger = await start({ lookup: () => undefined });
    expect(await rawExchange(stranger.httpPort, get("allowed.test"))).toBe("");
    // A lookup that throws closes the connection and leaves the proxy serving.
    const broken = await start({ lookup: () => { throw new Error("store gone"); } });
    expect(await rawExchange(broken.httpPort, get("allowed.test"))).toBe("");
    expect(await rawExchange(broken.httpPort, get("allowed.test"))).toBe("");
  });

  it("keeps a half-closed connection open until the server answers", async () => {
    const server = await listen(halfCloseServer(), "127.0.0.2");
    try {
      const p = await start({ dialPorts: { http: server.port, tls: server.port } });
      const request = get("allowed.test");
      expect(await rawExchange(p.httpPort, request, { end: true })).toBe(`HTTP/1.0 200 OK\r\n\r\ngot ${request.length} bytes after FIN`);
    } finally {
      server.close();
    }
  });
});
