import { networkInterfaces } from "node:os";
import type { Logger } from "pino";
import type { NetworkConfig } from "../config/network-config.js";
import { startDnsServer, type DnsServer } from "./dns-server.js";
import { createUpstreamResolver, resolveUpstreams } from "./dns-upstream.js";
import { Guardrails } from "./egress-decision.js";
import { startEgressProxy, type EgressProxy } from "./egress-proxy.js";
import { networkingProblem } from "./host-support.js";
import { SandboxNetworks, type AttachKind } from "./sandbox-network.js";
import type { ConnectionInterceptor } from "./types.js";

export interface Networking {
  networks: SandboxNetworks;
  proxy: EgressProxy;
  close(): Promise<void>;
}

export interface NetworkingOptions {
  /** Takes over connections to secrets' hosts (the secret interceptor). */
  interceptor?: ConnectionInterceptor;
  /** Seconds each sandbox's network took to set up before a start, made anew or kept (a metric). */
  onAttach?: (seconds: number, how: AttachKind) => void;
}

/** The host's own IPv4 addresses, every interface: never reachable from a sandbox, whatever is opened. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => a.family === "IPv4")
    .map((a) => a.address);
}

/** How often the host's addresses are read again (DHCP, interfaces coming and going). */
const HOST_ADDRESSES_EVERY_MS = 30_000;

/**
 * Sandboxes' networking: the DNS server and the egress proxy the table redirects to (listening on every
 * address, reachable only through the redirect: the table refuses anything else a sandbox sends the host),
 * then the networks themselves. Null (sandboxes get no network, and the log says why) when it is off or
 * the host lacks what it needs.
 */
export async function startNetworking(config: NetworkConfig, log: Logger, options: NetworkingOptions = {}): Promise<Networking | null> {
  if (!config.enabled) {
    log.info("sandbox networking is off (STASIS_NETWORK=off): sandboxes run with no network");
    return null;
  }
  const problem = await networkingProblem();
  if (problem) {
    log.warn({ problem }, "sandboxes get no network on this host; `stasis doctor` says more");
    return null;
  }
  let networks: SandboxNetworks | null = null;
  const lookup = (address: string) => networks?.lookup(address.replace(/^::ffff:/, ""));
  const upstreams = resolveUpstreams(config.dnsUpstream.length > 0 ? config.dnsUpstream : undefined);
  const guard = () => new Guardrails({ sandboxRange: config.range, hostAddresses: hostAddresses(), opened: config.openRanges });
  let guardrails = guard();
  const refresh = setInterval(() => {
    guardrails = guard();
  }, HOST_ADDRESSES_EVERY_MS);
  refresh.unref();
  let dns: DnsServer | null = null;
  try {
    dns = await startDnsServer({ host: "0.0.0.0", port: 0, lookup, upstreams, logger: log.child({ part: "dns" }) });
    const proxy = await startEgressProxy({
      host: "0.0.0.0",
      httpPort: 0,
      tlsPort: 0,
      lookup,
      resolve: createUpstreamResolver(upstreams),
      guardrails: { blocked: (ip) => guardrails.blocked(ip) },
      logger: log.child({ part: "egress-proxy" }),
      ...(options.interceptor ? { interceptor: options.interceptor } : {}),
      maxPerSandbox: config.maxConnections,
    });
    networks = new SandboxNetworks(config, { dns: dns.port, http: proxy.httpPort, tls: proxy.tlsPort }, log, {
      ...(options.onAttach ? { onAttach: options.onAttach } : {}),
      onRelease: (id) => proxy.forgetCounters(id),
    });
    const started = dns;
    log.info({ range: config.range, dnsPort: dns.port, proxyPorts: [proxy.httpPort, proxy.tlsPort], upstreams: upstreams.map((u) => `${u.host}:${u.port}`) }, "sandbox networking ready");
    return {
      networks,
      proxy,
      async close() {
        clearInterval(refresh);
        await Promise.all([started.close(), proxy.close()]);
      },
    };
  } catch (err) {
    clearInterval(refresh);
    await dns?.close();
    throw err;
  }
}
