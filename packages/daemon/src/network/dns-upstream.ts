import { createSocket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { isIP, connect as tcpConnect } from "node:net";
import { answersQuery } from "./dns-packet.js";
import type { NameResolver } from "./types.js";

/** The host's resolvers, which the daemon asks on the sandboxes' behalf. */

export interface Upstream {
  host: string;
  port: number;
  family: 4 | 6;
}

/** `1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]:5353`; null when malformed. */
export function parseUpstream(text: string): Upstream | null {
  const t = text.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(t);
  const v4 = /^([\d.]+)(?::(\d{1,5}))?$/.exec(t);
  const [host, portText] = bracketed ? [bracketed[1], bracketed[2]] : v4 ? [v4[1], v4[2]] : [t, undefined];
  const family = isIP(host ?? "");
  const port = portText === undefined ? 53 : Number(portText);
  if (host === undefined || (family !== 4 && family !== 6) || port < 1 || port > 65_535) return null;
  return { host, port, family };
}

/** The nameservers of a resolv.conf (loopback ones included: the daemon runs on the host). */
export function upstreamsFromResolvConf(text: string): Upstream[] {
  const out: Upstream[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const u = m?.[1] === undefined ? null : parseUpstream(m[1]);
    if (u !== null) out.push(u);
  }
  return out;
}

/** The configured upstreams, or the host's /etc/resolv.conf nameservers when none are configured. */
export function resolveUpstreams(configured: string[] | undefined, resolvConfPath = "/etc/resolv.conf"): Upstream[] {
  if (configured !== undefined && configured.length > 0) {
    return configured.map((c) => {
      const u = parseUpstream(c);
      if (u === null) throw new Error(`DNS upstream ${JSON.stringify(c)} is not an IP address or IP:port`);
      return u;
    });
  }
  let text = "";
  try {
    text = readFileSync(resolvConfPath, "utf8");
  } catch {
    // No resolv.conf: no upstream; every query then gets SERVFAIL.
  }
  return upstreamsFromResolvConf(text);
}

const hostPort = (u: Upstream) => (u.family === 6 ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`);

/** One query to one upstream over UDP: the response with the query's id, or null after `timeoutMs`. */
function askUdp(query: Buffer, id: number, upstream: Upstream, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    // A fresh socket per query: a random source port, and connect() takes replies from the upstream only.
    const socket = createSocket(upstream.family === 6 ? "udp6" : "udp4");
    let settled = false;
    const done = (answer: Buffer | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // Already closed by its error.
      }
      resolve(answer);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on("error", () => done(null));
    socket.on("message", (msg) => {
      if (answersQuery(msg, id)) done(msg);
    });
    socket.connect(upstream.port, upstream.host, () => socket.send(query, (err) => err && done(null)));
  });
}

/** One query to one upstream over TCP (a 2-byte length before each message). */
function askTcp(query: Buffer, id: number, upstream: Upstream, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: upstream.host, port: upstream.port });
    let data = Buffer.alloc(0);
    let settled = false;
    const done = (answer: Buffer | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.on("error", () => done(null));
    socket.on("close", () => done(null));
    socket.on("connect", () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      socket.write(Buffer.concat([len, query]));
    });
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length < 2) return;
      const length = data.readUInt16BE(0);
      if (data.length < 2 + length) return;
      const msg = data.subarray(2, 2 + length);
      done(answersQuery(msg, id) ? msg : null);
    });
  });
}

/**
 * Forwards a raw query to each upstream in turn until one answers (the response whose id matches), over
 * UDP or, for a client that came by TCP (after a truncated answer), over TCP. Null when none answered.
 */
export async function forward(query: Buffer, id: number, upstreams: Upstream[], options: { tcp: boolean; timeoutMs: number }): Promise<Buffer | null> {
  for (const upstream of upstreams) {
    const answer = await (options.tcp ? askTcp : askUdp)(query, id, upstream, options.timeoutMs);
    if (answer !== null) return answer;
  }
  return null;
}

export interface ResolverOptions {
  /** Names cached at most (the oldest go first). Default 1024. */
  maxEntries?: number;
  /** A cached answer is kept for its TTL, at most this long. Default 60 s. */
  maxTtlMs?: number;
  /** Per try, per server. Default 2 s. */
  timeoutMs?: number;
  /** Distinct names being resolved at once; more are refused. Default 256. */
  maxInFlight?: number;
}

/**
 * The proxy's resolver: A records through the upstreams (node:dns, ports allowed), with a small TTL
 * cache and one lookup at a time per name. Rejects when the name has no address.
 */
export function createUpstreamResolver(upstreams: Upstream[], options: ResolverOptions = {}): NameResolver {
  const maxEntries = options.maxEntries ?? 1024;
  const maxTtlMs = options.maxTtlMs ?? 60_000;
  const maxInFlight = options.maxInFlight ?? 256;
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 2000, tries: 2 });
  resolver.setServers(upstreams.map(hostPort));
  const cache = new Map<string, { addresses: string[]; expires: number }>();
  const inFlight = new Map<string, Promise<string[]>>();

  const lookup = async (name: string): Promise<string[]> => {
    const records = await resolver.resolve4(name, { ttl: true });
    if (records.length === 0) throw new Error(`${name} has no IPv4 address`);
    const ttlMs = Math.min(maxTtlMs, Math.max(1000, Math.min(...records.map((r) => r.ttl)) * 1000));
    const addresses = records.map((r) => r.address);
    cache.delete(name);
    if (cache.size >= maxEntries) {
      const oldest = cache.keys().next();
      if (oldest.done !== true) cache.delete(oldest.value);
    }
    cache.set(name, { addresses, expires: Date.now() + ttlMs });
    return addresses;
  };

  return (rawName: string) => {
    const name = rawName.toLowerCase().replace(/\.$/, "");
    const hit = cache.get(name);
    if (hit !== undefined) {
      if (hit.expires > Date.now()) return Promise.resolve(hit.addresses);
      cache.delete(name);
    }
    const pending = inFlight.get(name);
    if (pending !== undefined) return pending;
    if (inFlight.size >= maxInFlight) return Promise.reject(new Error("too many names being resolved"));
    const p = lookup(name).finally(() => inFlight.delete(name));
    inFlight.set(name, p);
    return p;
  };
}
