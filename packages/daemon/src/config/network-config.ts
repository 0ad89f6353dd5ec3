import { createHash } from "node:crypto";
import { parseEgressTarget } from "@stasis/protocol";

/** Sandboxes' networking, from STASIS_NETWORK_* variables (see the README's configuration table). */
export interface NetworkConfig {
  /** Sandboxes get a network (STASIS_NETWORK=on|off); off: every sandbox runs with no network at all. */
  enabled: boolean;
  /** What a sandbox may reach when its create says nothing (STASIS_NETWORK_DEFAULT=internet|none). */
  internetByDefault: boolean;
  /** The private IPv4 range sandboxes get addresses from, a /30 each (STASIS_NETWORK_RANGE). */
  range: string;
  /** Private or otherwise guarded ranges the operator opens to sandboxes (STASIS_NETWORK_OPEN, CIDRs). */
  openRanges: string[];
  /** Resolvers the daemon's DNS asks (STASIS_DNS_UPSTREAM, `ip` or `ip:port`); empty = the host's. */
  dnsUpstream: string[];
  /** Per-sandbox bandwidth cap each way in Mbit/s (STASIS_NETWORK_BANDWIDTH_MBIT); 0 = none. */
  bandwidthMbit: number;
  /** Extra CA certificates (a PEM file) the egress proxy trusts for secrets' hosts besides the public roots (STASIS_EGRESS_EXTRA_CA: a corporate CA). */
  extraCaFile: string | null;
  /** CA certificates (a PEM file) every sandbox with a network trusts besides the public roots (STASIS_SANDBOX_EXTRA_CA: a corporate TLS-inspecting proxy's CA). */
  sandboxCaFile: string | null;
  /** Per-sandbox cap on open outbound connections (STASIS_NETWORK_MAX_CONNECTIONS). */
  maxConnections: number;
  /**
   * Names this daemon's nftables table, namespaces and interfaces, so that several daemons (tests) on one
   * host never touch each other's: derived from the data folder.
   */
  tag: string;
  /** The data folder the tag is made from (named in the table, so leftovers of a removed one are found). */
  owner: string;
}

function cidrList(value: string | undefined, name: string): string[] {
  const items = (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (parseEgressTarget(item)?.kind !== "cidr") throw new Error(`${name} entries are IPv4 CIDRs or addresses, got '${item}'`);
  }
  return items;
}

export function loadNetworkConfig(env: NodeJS.ProcessEnv, dataDir: string): NetworkConfig {
  const enabled = (env.STASIS_NETWORK ?? "on").toLowerCase();
  if (!["on", "off", "1", "0"].includes(enabled)) throw new Error(`STASIS_NETWORK must be on or off, got '${env.STASIS_NETWORK}'`);
  const byDefault = (env.STASIS_NETWORK_DEFAULT ?? "internet").toLowerCase();
  if (byDefault !== "internet" && byDefault !== "none") throw new Error(`STASIS_NETWORK_DEFAULT must be internet or none, got '${env.STASIS_NETWORK_DEFAULT}'`);
  const range = env.STASIS_NETWORK_RANGE ?? "10.214.0.0/16";
  const parsed = parseEgressTarget(range);
  if (parsed?.kind !== "cidr" || parsed.prefix > 28 || parsed.prefix < 8) throw new Error(`STASIS_NETWORK_RANGE must be an IPv4 CIDR from /8 to /28, got '${range}'`);
  const upstream = (env.STASIS_DNS_UPSTREAM ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  for (const u of upstream) {
    if (!/^\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?$/.test(u)) throw new Error(`STASIS_DNS_UPSTREAM entries are ip or ip:port, got '${u}'`);
  }
  const num = (name: string, fallback: number) => {
    const v = env[name];
    if (v === undefined || v === "") return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got '${v}'`);
    return n;
  };
  return {
    enabled: enabled === "on" || enabled === "1",
    internetByDefault: byDefault === "internet",
    range: `${(parsed.network >>> 24) & 255}.${(parsed.network >>> 16) & 255}.${(parsed.network >>> 8) & 255}.${parsed.network & 255}/${parsed.prefix}`,
    openRanges: cidrList(env.STASIS_NETWORK_OPEN, "STASIS_NETWORK_OPEN"),
    dnsUpstream: upstream,
    bandwidthMbit: num("STASIS_NETWORK_BANDWIDTH_MBIT", 0),
    extraCaFile: env.STASIS_EGRESS_EXTRA_CA || null,
    sandboxCaFile: env.STASIS_SANDBOX_EXTRA_CA || null,
    maxConnections: num("STASIS_NETWORK_MAX_CONNECTIONS", 1024),
    owner: dataDir,
    tag: createHash("sha256").update(dataDir).digest("hex").slice(0, 6),
  };
}
