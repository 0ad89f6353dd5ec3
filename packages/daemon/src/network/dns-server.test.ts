import { createSocket } from "node:dgram";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ResolvedNetworkPolicy } from "@stasis/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { QTYPE, RCODE, answersQuery, buildQuery, rcodeOf } from "./dns-packet.js";
import { decideQuery, startDnsServer, type DnsServer } from "./dns-server.js";
import { createUpstreamResolver, parseUpstream, resolveUpstreams, upstreamsFromResolvConf, type Upstream } from "./dns-upstream.js";
import { startFakeUpstream, type FakeUpstream } from "./test-support/fake-dns.js";
import type { SandboxOnNetwork } from "./types.js";

const NAMES = { "a.test": "198.51.100.1", "b.test": "198.51.100.2", "x.evil.test": "198.51.100.66" };
const local = (port: number): Upstream => ({ host: "127.0.0.1", port, family: 4 });

/** Sends a query from `from` (a loopback address) and collects `count` answers. */
function ask(port: number, queries: Buffer[], count: number, from = "127.0.0.1"): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    const answers: Buffer[] = [];
    socket.on("error", reject);
    socket.on("message", (msg) => {
      answers.push(msg);
      if (answers.length === count) {
        socket.close();
        resolve(answers);
      }
    });
    socket.bind(0, from, () => {
      for (const q of queries) socket.send(q, port, "127.0.0.1");
    });
  });
}

function askTcp(port: number, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let data = Buffer.alloc(0);
    socket.on("error", reject);
    socket.on("connect", () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      socket.write(Buffer.concat([len, query]));
    });
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= 2 && data.length >= 2 + data.readUInt16BE(0)) {
        socket.destroy();
        resolve(data.subarray(2, 2 + data.readUInt16BE(0)));
      }
    });
  });
}

const ancount = (a: Buffer) => a.readUInt16BE(6);
const firstA = (a: Buffer) => [...a.subarray(a.length - 4)].join(".");

describe("the DNS server", () => {
  let upstream: FakeUpstream;
  let policy: ResolvedNetworkPolicy = { internet: true, allowOut: [], denyOut: [] };
  const sandbox = (): SandboxOnNetwork => ({ id: "sb-1", address: "127.0.0.1", policy, placeholders: {} });
  let server: DnsServer;
  const servers: DnsServer[] = [];
  const start = async (upstreams: Upstream[], extra: { maxInFlightPerSource?: number } = {}) => {
    const s = await startDnsServer({ host: "127.0.0.1", port: 0, upstreams, upstreamTimeoutMs: 300, lookup: (src) => (src === "127.0.0.1" ? sandbox() : undefined), ...extra });
    servers.push(s);
    return s;
  };

  beforeAll(async () => {
    upstream = await startFakeUpstream(NAMES);
    server = await start([local(upstream.port)]);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await upstream.close();
  });
  afterEach(() => {
    policy = { internet: true, allowOut: [], denyOut: [] };
    upstream.questions.length = 0;
  });

  it("forwards a query and relays the upstream's answer with the query's id", async () => {
    const [a] = await ask(server.port, [buildQuery(4321, "A.test", QTYPE.A, { edns: true })], 1);
    expect(a && answersQuery(a, 4321)).toBe(true);
    expect(a && rcodeOf(a)).toBe(RCODE.NOERROR);
    expect(a && firstA(a)).toBe("198.51.100.1");
    expect(upstream.questions).toEqual([{ name: "a.test", type: QTYPE.A, tcp: false }]);
  });

  it("relays the upstream's NXDOMAIN", async () => {
    const [a] = await ask(server.port, [buildQuery(1, "nope.test", QTYPE.A)], 1);
    expect(a && rcodeOf(a)).toBe(RCODE.NXDOMAIN);
  });

  it("answers AAAA with no records and asks no upstream", async () => {
    const [a] = await ask(server.port, [buildQuery(2, "a.test", QTYPE.AAAA)], 1);
    expect(a && [rcodeOf(a), ancount(a), answersQuery(a, 2)]).toEqual([RCODE.NOERROR, 0, true]);
    expect(upstream.questions).toEqual([]);
  });

  it("answers NXDOMAIN to a denied name or wildcard, unless allowOut names it", async () => {
    policy = { internet: true, allowOut: ["ok.evil.test"], denyOut: ["*.evil.test", "b.test"] };
    const answers = await ask(server.port, [buildQuery(3, "x.evil.test", QTYPE.A), buildQuery(4, "b.test", QTYPE.A), buildQuery(5, "ok.evil.test", QTYPE.A)], 3);
    const byId = new Map(answers.map((a) => [a.readUInt16BE(0), rcodeOf(a)]));
    expect(Object.fromEntries(byId)).toEqual({ 3: RCODE.NXDOMAIN, 4: RCODE.NXDOMAIN, 5: RCODE.NXDOMAIN });
    // ok.evil.test went upstream (which has no such name); the denied ones did not.
    expect(upstream.questions.map((q) => q.name)).toEqual(["ok.evil.test"]);
  });

  it("refuses every query when the policy allows nothing, and answers when an allow list exists", async () => {
    policy = { internet: false, allowOut: [], denyOut: [] };
    const [refused] = await ask(server.port, [buildQuery(6, "a.test", QTYPE.A)], 1);
    expect(refused && rcodeOf(refused)).toBe(RCODE.REFUSED);
    policy = { internet: false, allowOut: ["a.test"], denyOut: [] };
    const [ok] = await ask(server.port, [buildQuery(7, "a.test", QTYPE.A)], 1);
    expect(ok && rcodeOf(ok)).toBe(RCODE.NOERROR);
  });

  it("refuses a source that is no sandbox", async () => {
    const [a] = await ask(server.port, [buildQuery(8, "a.test", QTYPE.A)], 1, "127.0.0.2");
    expect(a && rcodeOf(a)).toBe(RCODE.REFUSED);
    expect(upstream.questions).toEqual([]);
  });

  it("survives a lookup that throws (no answer) and keeps serving", async () => {
    const broken = await startDnsServer({ host: "127.0.0.1", port: 0, upstreams: [local(upstream.port)], lookup: () => { throw new Error("store gone"); } });
    servers.push(broken);
    const bad = buildQuery(20, "a.test", QTYPE.A);
    bad.writeUInt16BE(2, 4);
    // The first query meets the throwing lookup; the FORMERR after it shows the server still answers.
    const answers = await ask(broken.port, [buildQuery(19, "a.test", QTYPE.A), bad], 1);
    expect(answers.map((a) => [a.readUInt16BE(0), rcodeOf(a)])).toEqual([[20, RCODE.FORMERR]]);
  });

  it("answers FORMERR to a malformed query, drops noise, and keeps serving", async () => {
    const bad = buildQuery(9, "a.test", QTYPE.A);
    bad.writeUInt16BE(2, 4);
    const response = buildQuery(10, "a.test", QTYPE.A);
    response.writeUInt16BE(0x8000, 2);
    const answers = await ask(server.port, [Buffer.from([1, 2, 3]), response, bad, buildQuery(11, "a.test", QTYPE.AAAA)], 2);
    expect(answers.map((a) => [a.readUInt16BE(0), rcodeOf(a)])).toEqual([[9, RCODE.FORMERR], [11, RCODE.NOERROR]]);
  });

  it("refuses zone transfers and other classes", async () => {
    const chaos = buildQuery(13, "version.bind", 16);
    chaos.writeUInt16BE(3, chaos.length - 2);
    const answers = await ask(server.port, [buildQuery(12, "a.test", QTYPE.AXFR), chaos], 2);
    expect(answers.map(rcodeOf)).toEqual([RCODE.REFUSED, RCODE.REFUSED]);
  });

  it("answers over TCP, forwarding over TCP", async () => {
    const a = await askTcp(server.port, buildQuery(14, "b.test", QTYPE.A));
    expect([answersQuery(a, 14), firstA(a)]).toEqual([true, "198.51.100.2"]);
    expect(upstream.questions).toEqual([{ name: "b.test", type: QTYPE.A, tcp: true }]);
  });

  it("falls back to the next upstream when one does not answer, and SERVFAILs when none does", async () => {
    const silent = await startFakeUpstream(NAMES, { silent: true });
    try {
      const fallback = await start([local(silent.port), local(upstream.port)]);
      const [a] = await ask(fallback.port, [buildQuery(15, "a.test", QTYPE.A)], 1);
      expect(a && firstA(a)).toBe("198.51.100.1");
      expect(silent.questions.length).toBe(1);
      const none = await start([local(silent.port)]);
      const [b] = await ask(none.port, [buildQuery(16, "a.test", QTYPE.A)], 1);
      expect(b && rcodeOf(b)).toBe(RCODE.SERVFAIL);
    } finally {
      await silent.close();
    }
  });

  it("drops a source's forwards beyond its in-flight limit", async () => {
    const slow = await startFakeUpstream(NAMES);
    try {
      const limited = await start([local(slow.port)], { maxInFlightPerSource: 2 });
      slow.hold();
      // The AAAA is answered at once and was sent after the three on the same socket: once it is back, the
      // third forward has been seen (and dropped, the first two being held upstream). Then they are let go.
      const answers = await new Promise<Buffer[]>((resolve) => {
        const socket = createSocket("udp4");
        const got: Buffer[] = [];
        socket.on("message", (msg) => {
          got.push(msg);
          if (msg.readUInt16BE(0) === 200) slow.release();
          if (got.length === 3) {
            socket.close();
            resolve(got);
          }
        });
        for (const id of [101, 102, 103]) socket.send(buildQuery(id, "a.test", QTYPE.A), limited.port, "127.0.0.1");
        socket.send(buildQuery(200, "a.test", QTYPE.AAAA), limited.port, "127.0.0.1");
      });
      const ids = answers.map((a) => a.readUInt16BE(0));
      expect([ids[0], ids.slice(1).sort()]).toEqual([200, [101, 102]]);
      expect(slow.questions.length).toBe(2);
    } finally {
      await slow.close();
    }
  });
});

describe("upstreams and the proxy's resolver", () => {
  it("parses upstreams", () => {
    expect(parseUpstream("10.0.0.2")).toEqual({ host: "10.0.0.2", port: 53, family: 4 });
    expect(parseUpstream("127.0.0.53:5353")).toEqual({ host: "127.0.0.53", port: 5353, family: 4 });
    expect(parseUpstream("[::1]:54")).toEqual({ host: "::1", port: 54, family: 6 });
    expect(parseUpstream("2001:db8::1")).toEqual({ host: "2001:db8::1", port: 53, family: 6 });
    for (const bad of ["", "dns.google", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3:53"]) expect(parseUpstream(bad)).toBeNull();
  });

  it("reads resolv.conf nameservers, loopback included, and prefers configured ones", () => {
    const text = "# x\nsearch lan\nnameserver 127.0.0.53\nnameserver ::1\nnameserver bogus\noptions edns0\n";
    expect(upstreamsFromResolvConf(text)).toEqual([{ host: "127.0.0.53", port: 53, family: 4 }, { host: "::1", port: 53, family: 6 }]);
    const path = join(mkdtempSync(join(tmpdir(), "stasis-dns-")), "resolv.conf");
    writeFileSync(path, text);
    expect(resolveUpstreams(undefined, path).map((u) => u.host)).toEqual(["127.0.0.53", "::1"]);
    expect(resolveUpstreams(["9.9.9.9:53"], path)).toEqual([{ host: "9.9.9.9", port: 53, family: 4 }]);
    expect(() => resolveUpstreams(["nope"], path)).toThrow();
    expect(resolveUpstreams(undefined, join(tmpdir(), "no-such-resolv.conf"))).toEqual([]);
  });

  it("resolves through an upstream on a port, caches, and rejects unknown names", async () => {
    const upstream = await startFakeUpstream(NAMES);
    try {
      const resolve = createUpstreamResolver([local(upstream.port)], { maxEntries: 1 });
      expect(await resolve("A.test.")).toEqual(["198.51.100.1"]);
      expect(await resolve("a.test")).toEqual(["198.51.100.1"]);
      expect(upstream.questions.filter((q) => q.name === "a.test").length).toBe(1);
      // One entry only: b.test pushes a.test out.
      expect(await Promise.all([resolve("b.test"), resolve("b.test")])).toEqual([["198.51.100.2"], ["198.51.100.2"]]);
      expect(upstream.questions.filter((q) => q.name === "b.test").length).toBe(1);
      expect(await resolve("a.test")).toEqual(["198.51.100.1"]);
      expect(upstream.questions.filter((q) => q.name === "a.test").length).toBe(2);
      await expect(resolve("nope.test")).rejects.toThrow();
    } finally {
      await upstream.close();
    }
  });
});

describe("what the policy lets the DNS server answer", () => {
  const on = (policy: ResolvedNetworkPolicy): SandboxOnNetwork => ({ id: "sb", address: "10.0.0.2", policy, placeholders: {} });
  const A = 1;
  const IN = 1;

  it("an allow list of names resolves those names only; with a CIDR in it, any name may lead there", () => {
    const names = on({ internet: false, allowOut: ["pypi.org", "*.example.com"], denyOut: [] });
    expect(decideQuery(names, "pypi.org", A, IN)).toEqual({ forward: true });
    expect(decideQuery(names, "files.example.com", A, IN)).toEqual({ forward: true });
    expect(decideQuery(names, "exfil.attacker.net", A, IN)).toEqual({ rcode: 3 });
    const withCidr = on({ internet: false, allowOut: ["pypi.org", "203.0.113.0/24"], denyOut: [] });
    expect(decideQuery(withCidr, "anything.net", A, IN)).toEqual({ forward: true });
  });
});
