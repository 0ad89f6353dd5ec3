import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import { originalDestination as conntrackDestination, type Destination } from "./conntrack.js";
import { compiledPolicyOf, decideAddress, decideName, matchName, type Decision, type Guardrails } from "./egress-decision.js";
import { peek, type Peeked } from "./proxy-peek.js";
import { newCounter, splice, type ProxyCounter } from "./proxy-splice.js";
import type { ConnectionInterceptor, NameResolver, SandboxLookup, SandboxOnNetwork } from "./types.js";
import { findPlaceholders } from "../secrets/placeholders.js";

/**
 * The transparent egress proxy. nftables redirects a sandbox's TCP 80 to `httpPort` and TCP 443 to
 * `tlsPort` (two listeners: which one a connection came to gives the port to dial, with no conntrack
 * read). A connection is read up to its TLS SNI or HTTP Host; the proxy resolves that name itself and
 * dials the resolved address, never the one the sandbox dialled, so a forged name reaches only that
 * name's servers. Without a name it decides by the original destination (conntrack).
 */

export interface EgressProxyOptions {
  /** Listen address (the redirect's target). */
  host: string;
  /** Listener ports; 0 picks free ones. */
  httpPort: number;
  tlsPort: number;
  lookup: SandboxLookup;
  resolve: NameResolver;
  guardrails: Pick<Guardrails, "blocked">;
  logger: Logger;
  /** Takes over allowed, named connections (secret injection) when it returns true. */
  interceptor?: ConnectionInterceptor;
  /** The port dialled for a named connection on each listener: the redirected ports (80, 443; tests change them). */
  dialPorts?: { http: number; tls: number };
  /** Where a connection without a name was going; default: the conntrack table. */
  originalDestination?: (client: Socket, listenerPort: number) => Promise<Destination | null>;
  /** Open connections per sandbox (default 256) and in all (default 4096). */
  maxPerSandbox?: number;
  maxTotal?: number;
  /** Bytes read to find the name (default 16 KiB), and for how long (default 10 s). */
  peekBytes?: number;
  peekTimeoutMs?: number;
  /** Dialling the upstream (default 10 s). */
  connectTimeoutMs?: number;
  /** A spliced connection with no traffic either way this long is closed (default 10 min). */
  idleTimeoutMs?: number;
}

export interface EgressProxy {
  httpPort: number;
  tlsPort: number;
  /** A snapshot of every sandbox's counters, by sandbox id. */
  proxyCounters(): Record<string, ProxyCounter>;
  /** Drops a deleted sandbox's counters (after its last connection is gone). */
  forgetCounters(sandboxId: string): void;
  close(): Promise<void>;
}

type Kind = "http" | "tls";
/** Where an allowed connection goes: the addresses (every one allowed) tried in order, and the port. */
interface Target {
  host: string;
  addresses: string[];
  port: number;
}

function fromConntrack(client: Socket, listenerPort: number): Promise<Destination | null> {
  const address = client.remoteAddress?.replace(/^::ffff:/, "");
  if (address === undefined || client.remotePort === undefined) return Promise.resolve(null);
  return conntrackDestination(address, client.remotePort, listenerPort);
}

/** The short plain-text answer a plain-HTTP client gets when the proxy will not carry its request. */
export function httpRefusal(status: 400 | 403 | 502, text: string): Buffer {
  const reason = { 400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway" }[status];
  const body = `${text}\n`;
  return Buffer.from(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** Answers a plain-HTTP client and closes; what it still sends is read and dropped, so the answer is not reset away. */
function answerHttp(client: Socket, status: 400 | 403 | 502, text: string): void {
  if (client.destroyed) return;
  client.end(httpRefusal(status, text));
  client.setTimeout(5000, () => client.destroy());
  client.resume();
}

/** At most `burst` denial lines per sandbox per window, then one line saying how many were left out. */
class DenialLog {
  private readonly windows = new Map<string, { start: number; n: number }>();
  constructor(private readonly logger: Logger, private readonly burst = 20, private readonly windowMs = 10_000) {}
  log(fields: { sandbox: string; host: string; port: number; reason: string }): void {
    const now = Date.now();
    let w = this.windows.get(fields.sandbox);
    if (w === undefined || now - w.start >= this.windowMs) {
      if (w !== undefined && w.n > this.burst) this.logger.info({ sandbox: fields.sandbox, suppressed: w.n - this.burst }, "egress denials not logged");
      w = { start: now, n: 0 };
      this.windows.set(fields.sandbox, w);
      if (this.windows.size > 10_000) this.windows.clear();
    }
    if (++w.n <= this.burst) this.logger.info(fields, "egress denied");
  }
}

export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const maxPerSandbox = options.maxPerSandbox ?? 256;
  const maxTotal = options.maxTotal ?? 4096;
  const dialPorts = options.dialPorts ?? { http: 80, tls: 443 };
  const findOriginal = options.originalDestination ?? fromConntrack;
  const denials = new DenialLog(options.logger);
  const counters = new Map<string, ProxyCounter>();
  let total = 0;
  /** Every socket the proxy holds, clients and upstreams, so close() leaves none behind. */
  const open = new Set<Socket>();
  const track = (socket: Socket) => {
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  };

  const counterOf = (id: string) => {
    let c = counters.get(id);
    if (c === undefined) counters.set(id, (c = newCounter()));
    return c;
  };

  const accept = (client: Socket, kind: Kind, listenerPort: number): void => {
    client.on("error", () => client.destroy());
    track(client);
    try {
      admit(client, kind, listenerPort);
    } catch (err) {
      // A throwing lookup must not take the daemon down with it.
      options.logger.error({ err }, "egress proxy accept failed");
      client.destroy();
    }
  };

  const admit = (client: Socket, kind: Kind, listenerPort: number): void => {
    const source = client.remoteAddress?.replace(/^::ffff:/, "");
    const sandbox = source === undefined ? undefined : options.lookup(source);
    if (sandbox === undefined) {
      client.destroy();
      return;
    }
    const counter = counterOf(sandbox.id);
    counter.connections++;
    if (counter.active >= maxPerSandbox || total >= maxTotal) {
      counter.denied++;
      denials.log({ sandbox: sandbox.id, host: "", port: kind === "tls" ? dialPorts.tls : dialPorts.http, reason: counter.active >= maxPerSandbox ? "connection cap (sandbox)" : "connection cap (daemon)" });
      client.destroy();
      return;
    }
    counter.active++;
    total++;
    client.once("close", () => {
      counter.active--;
      total--;
    });
    handle(client, kind, listenerPort, source ?? "", counter).catch((err: unknown) => {
      options.logger.error({ err, sandbox: sandbox.id }, "egress proxy connection failed");
      client.destroy();
    });
  };

  const deny = (client: Socket, sandbox: SandboxOnNetwork, counter: ProxyCounter, host: string, port: number, reason: string, http: 400 | 403 | 502 | null) => {
    counter.denied++;
    denials.log({ sandbox: sandbox.id, host, port, reason });
    if (http !== null) answerHttp(client, http, http === 403 ? `stasis: egress to ${host} is blocked by this sandbox's network policy (${reason})` : `stasis: ${reason}`);
    else client.destroy();
  };

  const handle = async (client: Socket, kind: Kind, listenerPort: number, source: string, counter: ProxyCounter): Promise<void> => {
    const peeked: Peeked = await peek(client, options.peekBytes ?? 16 * 1024, options.peekTimeoutMs ?? 10_000);
    if (peeked.kind === "gone") return void client.destroy();
    // The policy as it is now (a runtime change applies to new connections).
    const sandbox = options.lookup(source);
    if (sandbox === undefined) return void client.destroy();
    const port = kind === "tls" ? dialPorts.tls : dialPorts.http;
    if (peeked.kind === "refuse") return deny(client, sandbox, counter, "", port, peeked.reason, peeked.http ? 400 : null);
    const http = peeked.kind === "http";
    const name = peeked.kind === "other" ? null : peeked.name;
    const head = peeked.head;

    let target: Target;
    if (name !== null) {
      const decided = await decideNamed(sandbox, name);
      if (client.destroyed) return;
      if ("reason" in decided) return deny(client, sandbox, counter, name, port, decided.reason, http ? decided.status : null);
      target = { host: name, addresses: decided.addresses, port };
    } else {
      const dst = await findOriginal(client, listenerPort);
      if (client.destroyed) return;
      if (dst === null) return deny(client, sandbox, counter, "", port, "original destination unknown", http ? 403 : null);
      const blocked = options.guardrails.blocked(dst.address);
      const d = blocked === null ? decideAddress(compiledPolicyOf(sandbox.policy), dst.address) : { verdict: "deny", reason: blocked };
      if (d.verdict === "deny") return deny(client, sandbox, counter, dst.address, dst.port, d.reason, http ? 403 : null);
      target = { host: dst.address, addresses: [dst.address], port: dst.port };
    }

    if (name !== null && options.interceptor !== undefined) {
      const taken = options.interceptor({ sandbox, host: name, port: target.port, address: target.addresses[0] ?? "", tls: peeked.kind === "tls", client, head });
      if (taken) return;
    }
    // A placeholder in a plain request to a host that is not its secret's goes out as it is: say so.
    if (http && Object.keys(sandbox.placeholders).length > 0) {
      const leaked = findPlaceholders(head, sandbox.placeholders);
      if (leaked.length > 0) options.logger.warn({ sandbox: sandbox.id, host: target.host, secrets: leaked }, "placeholder sent to a host that is not its secret's: sent as it is");
    }
    dial(client, target, head, counter, http, sandbox);
  };

  /** Resolves the name and keeps the addresses both the guardrails and the policy allow, in order. */
  const decideNamed = async (sandbox: SandboxOnNetwork, name: string): Promise<{ addresses: string[] } | { reason: string; status: 403 | 502 }> => {
    // A name the policy denies outright is refused before any lookup.
    if (matchName(compiledPolicyOf(sandbox.policy), name) === "deny") return { reason: "denyOut name", status: 403 };
    let addresses: string[];
    try {
      addresses = await options.resolve(name);
    } catch {
      return { reason: "name does not resolve", status: 502 };
    }
    const policy = compiledPolicyOf(sandbox.policy);
    let first: Decision | undefined;
    const allowed: string[] = [];
    for (const address of addresses) {
      const blocked = options.guardrails.blocked(address);
      const d: Decision = blocked === null ? decideName(policy, name, address) : { verdict: "deny", reason: `resolves to ${blocked}` };
      if (d.verdict === "allow") allowed.push(address);
      else first ??= d;
    }
    if (allowed.length > 0) return { addresses: allowed };
    return { reason: first?.reason ?? "name has no address", status: first === undefined ? 502 : 403 };
  };

  /** Dials the target's addresses in turn until one connects (at most 4), then splices. */
  const dial = (client: Socket, target: Target, head: Buffer, counter: ProxyCounter, http: boolean, sandbox: SandboxOnNetwork, index = 0): void => {
    const address = target.addresses[index] ?? "";
    const upstream = connect({ host: address, port: target.port, allowHalfOpen: true });
    track(upstream);
    const connectTimer = setTimeout(() => upstream.destroy(new Error("connect timeout")), options.connectTimeoutMs ?? 10_000);
    upstream.once("close", () => clearTimeout(connectTimer));
    const abort = () => upstream.destroy();
    client.once("close", abort);
    const onConnectError = (err: Error) => {
      client.off("close", abort);
      options.logger.info({ sandbox: sandbox.id, host: target.host, address, port: target.port, err: err.message }, "egress upstream unreachable");
      if (client.destroyed) return;
      if (index + 1 < Math.min(4, target.addresses.length)) return dial(client, target, head, counter, http, sandbox, index + 1);
      if (http) answerHttp(client, 502, `stasis: could not reach ${target.host}`);
      else client.destroy();
    };
    upstream.once("error", onConnectError);
    upstream.once("connect", () => {
      clearTimeout(connectTimer);
      upstream.off("error", onConnectError);
      client.off("close", abort);
      if (client.destroyed) return upstream.destroy();
      splice(client, upstream, head, counter, options.idleTimeoutMs ?? 600_000);
    });
  };

  const listen = (kind: Kind, port: number): Promise<Server> =>
    new Promise((resolve, reject) => {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (c) => accept(c, kind, (server.address() as AddressInfo).port));
      server.once("error", reject);
      server.listen(port, options.host, () => {
        server.off("error", reject);
        server.on("error", (err) => options.logger.error({ err, kind }, "egress proxy listener error"));
        resolve(server);
      });
    });

  const httpServer = await listen("http", options.httpPort);
  const tlsServer = await listen("tls", options.tlsPort).catch(async (err: unknown) => {
    await new Promise((r) => httpServer.close(r));
    throw err;
  });
  return {
    httpPort: (httpServer.address() as AddressInfo).port,
    tlsPort: (tlsServer.address() as AddressInfo).port,
    proxyCounters: () => Object.fromEntries([...counters].map(([id, c]) => [id, { ...c }])),
    forgetCounters: (id) => {
      if (counters.get(id)?.active === 0) counters.delete(id);
    },
    close: async () => {
      const closed = Promise.all([httpServer, tlsServer].map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const socket of open) socket.destroy();
      await closed;
    },
  };
}
