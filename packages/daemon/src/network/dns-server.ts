import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import { allowsNothing, compiledPolicyOf, matchName } from "./egress-decision.js";
import { MAX_QUERY_BYTES, QCLASS_IN, QTYPE, RCODE, buildAnswer, parseQuery } from "./dns-packet.js";
import { forward, type Upstream } from "./dns-upstream.js";
import type { SandboxLookup, SandboxOnNetwork } from "./types.js";

/**
 * The resolver sandboxes use: nftables sends each sandbox's port-53 traffic here, so a query's source
 * address says which sandbox asks. It answers what the policy settles itself (REFUSED, NXDOMAIN, no AAAA)
 * and forwards the rest, raw, to the host's resolvers. UDP, and TCP for clients retrying a truncated answer.
 */

export interface DnsServerOptions {
  /** The address to listen on (the lead's redirect target). */
  host: string;
  /** UDP and TCP port; 0 picks a free one (the same for both). */
  port: number;
  lookup: SandboxLookup;
  upstreams: Upstream[];
  logger?: Logger;
  /** Per upstream, per query. Default 2 s. */
  upstreamTimeoutMs?: number;
  /** Queries one source may have unanswered at once; more are dropped. Default 32. */
  maxInFlightPerSource?: number;
  /** Queries unanswered at once over all sources. Default 1024. */
  maxInFlight?: number;
  /** TCP connections one source may hold. Default 8. */
  maxTcpPerSource?: number;
  /** TCP connections over all sources. Default 512. */
  maxTcpTotal?: number;
  /** A TCP connection with nothing to do is closed after this long. Default 10 s. */
  tcpIdleMs?: number;
}

export interface DnsServer {
  port: number;
  close(): Promise<void>;
}

type Outcome = { rcode: number } | { forward: true };

/** What the policy says of a question, before any upstream is asked. */
export function decideQuery(sandbox: SandboxOnNetwork | undefined, name: string, type: number, qclass: number): Outcome {
  if (sandbox === undefined) return { rcode: RCODE.REFUSED };
  const compiled = compiledPolicyOf(sandbox.policy);
  if (allowsNothing(compiled)) return { rcode: RCODE.REFUSED };
  if (qclass !== QCLASS_IN || type === QTYPE.AXFR || type === QTYPE.IXFR) return { rcode: RCODE.REFUSED };
  const verdict = matchName(compiled, name);
  if (verdict === "deny") return { rcode: RCODE.NXDOMAIN };
  // An allow list of names only: no other name can be reached, so none is resolved either (queries for
  // names are a way out too: data can leave in them).
  if (compiled.allowList && compiled.allow.cidrs.length === 0 && verdict !== "allow") return { rcode: RCODE.NXDOMAIN };
  // IPv6 is off inside sandboxes: an empty answer (not an error) makes clients use the A records.
  if (type === QTYPE.AAAA) return { rcode: RCODE.NOERROR };
  return { forward: true };
}

class Limits {
  private readonly perSource = new Map<string, number>();
  private total = 0;
  constructor(private readonly maxPerSource: number, private readonly maxTotal: number) {}
  take(source: string): boolean {
    const n = this.perSource.get(source) ?? 0;
    if (n >= this.maxPerSource || this.total >= this.maxTotal) return false;
    this.perSource.set(source, n + 1);
    this.total++;
    return true;
  }
  give(source: string): void {
    const n = (this.perSource.get(source) ?? 1) - 1;
    if (n <= 0) this.perSource.delete(source);
    else this.perSource.set(source, n);
    this.total--;
  }
}

/**
 * Starts the server. With port 0, UDP picks a free port and TCP takes the same number, which another
 * program may hold for TCP: then it starts again on another (a daemon must not fail to start on that).
 */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDnsServerOnce(options);
    } catch (err) {
      if (options.port !== 0 || (err as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= 20) throw err;
    }
  }
}

async function startDnsServerOnce(options: DnsServerOptions): Promise<DnsServer> {
  const timeoutMs = options.upstreamTimeoutMs ?? 2000;
  const inFlight = new Limits(options.maxInFlightPerSource ?? 32, options.maxInFlight ?? 1024);
  const tcpConns = new Limits(options.maxTcpPerSource ?? 8, options.maxTcpTotal ?? 512);
  const log = options.logger;

  /**
   * Answers one query from `source` (never rejects). What the policy settles is answered at once; a
   * forward holds one of the source's in-flight slots, and a query over the limit gets no answer.
   */
  const handle = (query: Buffer, source: string, tcp: boolean, reply: (answer: Buffer) => void): void => {
    try {
      answer(query, source, tcp, reply);
    } catch (err) {
      // A throwing lookup must not take the daemon down with it.
      log?.error({ err, source }, "dns query failed");
    }
  };

  const answer = (query: Buffer, source: string, tcp: boolean, reply: (answer: Buffer) => void): void => {
    const parsed = parseQuery(query);
    if (parsed.kind === "drop") return;
    if (parsed.kind === "error") return reply(buildAnswer(query, parsed, parsed.rcode));
    const { name, type, class: qclass } = parsed.question;
    const sandbox = options.lookup(source);
    const outcome = decideQuery(sandbox, name, type, qclass);
    if ("rcode" in outcome) {
      if (outcome.rcode !== RCODE.NOERROR) log?.debug({ sandbox: sandbox?.id, source, name, type, rcode: outcome.rcode }, "dns query answered by policy");
      return reply(buildAnswer(query, parsed, outcome.rcode));
    }
    if (!inFlight.take(source)) return;
    forward(query, parsed.id, options.upstreams, { tcp, timeoutMs })
      .then((relayed) => {
        if (relayed === null) log?.warn({ sandbox: sandbox?.id, name, type }, "no upstream resolver answered");
        reply(relayed ?? buildAnswer(query, parsed, RCODE.SERVFAIL));
      })
      .catch((err: unknown) => log?.error({ err, source }, "dns forward failed"))
      .finally(() => inFlight.give(source));
  };

  const udp = createSocket({ type: "udp4", recvBufferSize: 1 << 20 });
  udp.on("error", (err) => log?.error({ err }, "dns udp socket error"));
  udp.on("message", (msg, rinfo) => {
    if (msg.length > MAX_QUERY_BYTES) return;
    handle(msg, rinfo.address, false, (a) => {
      // A UDP answer the upstream made is already sized for the client; ours are tiny.
      try {
        udp.send(a, rinfo.port, rinfo.address, () => undefined);
      } catch {
        // The socket closed meanwhile (the server is stopping).
      }
    });
  });

  const tcp = createServer((socket) => serveTcp(socket));
  const serveTcp = (socket: Socket): void => {
    const source = socket.remoteAddress?.replace(/^::ffff:/, "") ?? "";
    if (!tcpConns.take(source)) {
      socket.destroy();
      return;
    }
    socket.once("close", () => tcpConns.give(source));
    socket.setTimeout(options.tcpIdleMs ?? 10_000, () => socket.destroy());
    socket.on("error", () => socket.destroy());
    let data = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      while (data.length >= 2) {
        const length = data.readUInt16BE(0);
        if (length > MAX_QUERY_BYTES) {
          socket.destroy();
          return;
        }
        if (data.length < 2 + length) break;
        const query = Buffer.from(data.subarray(2, 2 + length));
        data = data.subarray(2 + length);
        handle(query, source, true, (a) => {
          if (socket.destroyed) return;
          // A client that sends queries and never reads its answers gets closed, not buffered for.
          if (socket.writableLength > 64 * 1024) {
            socket.destroy();
            return;
          }
          const len = Buffer.alloc(2);
          len.writeUInt16BE(a.length);
          socket.write(Buffer.concat([len, a]));
        });
      }
    });
  };

  const port = await listenBoth(udp, tcp, options.host, options.port);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        udp.close();
        tcp.close(() => resolve());
      }),
  };
}

/** Binds UDP, then TCP on the port UDP got. */
async function listenBoth(udp: UdpSocket, tcp: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(port, host, () => {
      udp.off("error", reject);
      resolve();
    });
  });
  const bound = udp.address().port;
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(bound, host, () => {
        tcp.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    udp.close();
    throw err;
  }
  return bound;
}
