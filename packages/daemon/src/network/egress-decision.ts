import { isBelowDomain, parseEgressTarget, parseIpv4, type ResolvedNetworkPolicy } from "@stasis/protocol";

/**
 * What a sandbox's policy says of one outbound connection. Pure functions over a policy compiled once
 * (CIDRs as numbers, names in sets), so the proxy and the DNS server decide without parsing per packet.
 */

export interface Cidr {
  network: number;
  prefix: number;
}

interface Targets {
  cidrs: Cidr[];
  /** Exact names, lowercased, no trailing dot. */
  names: Set<string>;
  /** Wildcard suffixes: `*.example.com` is kept as `example.com`. */
  suffixes: string[];
}

export interface CompiledPolicy {
  internet: boolean;
  allow: Targets;
  deny: Targets;
  /** allowOut was given (non-empty): everything it does not name is refused. */
  allowList: boolean;
}

export type Verdict = "allow" | "deny";

export interface Decision {
  verdict: Verdict;
  /** Why, for logs: which rule decided. */
  reason: string;
}

function compileTargets(list: string[]): Targets {
  const out: Targets = { cidrs: [], names: new Set(), suffixes: [] };
  for (const text of list) {
    const t = parseEgressTarget(text);
    if (t === null) continue;
    if (t.kind === "cidr") out.cidrs.push({ network: t.network, prefix: t.prefix });
    else if (t.kind === "domain") out.names.add(t.name);
    else out.suffixes.push(t.suffix);
  }
  return out;
}

export function compilePolicy(policy: ResolvedNetworkPolicy): CompiledPolicy {
  return {
    internet: policy.internet,
    allow: compileTargets(policy.allowOut),
    deny: compileTargets(policy.denyOut),
    // From the raw list: an allow list whose entries were all malformed still means "deny the rest".
    allowList: policy.allowOut.length > 0,
  };
}

const compiledCache = new WeakMap<ResolvedNetworkPolicy, CompiledPolicy>();

/** The policy compiled once per policy object (a changed policy is a new object, compiled anew). */
export function compiledPolicyOf(policy: ResolvedNetworkPolicy): CompiledPolicy {
  let compiled = compiledCache.get(policy);
  if (compiled === undefined) {
    compiled = compilePolicy(policy);
    compiledCache.set(policy, compiled);
  }
  return compiled;
}

/** The policy lets nothing out at all (the DNS server then refuses every query). */
export function allowsNothing(compiled: CompiledPolicy): boolean {
  return !compiled.internet && !compiled.allowList;
}

/** TCP 80 and 443 must go through the egress proxy: some rule names a domain. */
export function needsProxy(compiled: CompiledPolicy): boolean {
  const named = (t: Targets) => t.names.size > 0 || t.suffixes.length > 0;
  return named(compiled.allow) || named(compiled.deny);
}

export function cidrContains(cidr: Cidr, address: number): boolean {
  const mask = cidr.prefix === 0 ? 0 : (0xffffffff << (32 - cidr.prefix)) >>> 0;
  return ((address & mask) >>> 0) === cidr.network;
}

/** A CIDR or address text (`10.0.0.0/8`, `10.1.2.3`) as a Cidr with its host bits cleared, or null. */
export function parseCidr(text: string): Cidr | null {
  const t = parseEgressTarget(text);
  return t !== null && t.kind === "cidr" ? { network: t.network, prefix: t.prefix } : null;
}

/** A name as compared: lowercased, one trailing dot dropped. */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

function nameIn(targets: Targets, name: string): boolean {
  if (targets.names.has(name)) return true;
  // `*.example.com` matches `a.example.com` and `a.b.example.com`, never `example.com` itself.
  return targets.suffixes.some((s) => isBelowDomain(name, s));
}

/** Which list names `name` (allowOut first), if any. */
export function matchName(compiled: CompiledPolicy, name: string): Verdict | null {
  const n = normalizeName(name);
  if (nameIn(compiled.allow, n)) return "allow";
  if (nameIn(compiled.deny, n)) return "deny";
  return null;
}

/** A connection known by its address only (any port, UDP, or TCP 80/443 without a name). */
export function decideAddress(compiled: CompiledPolicy, ip: string): Decision {
  const address = parseIpv4(ip);
  if (address === null) return { verdict: "deny", reason: "not an IPv4 address" };
  if (compiled.allow.cidrs.some((c) => cidrContains(c, address))) return { verdict: "allow", reason: "allowOut" };
  if (compiled.deny.cidrs.some((c) => cidrContains(c, address))) return { verdict: "deny", reason: "denyOut" };
  if (compiled.allowList) return { verdict: "deny", reason: "not in allowOut" };
  return compiled.internet ? { verdict: "allow", reason: "internet" } : { verdict: "deny", reason: "internet off" };
}

/** A TCP 80/443 connection to `name` (Host or SNI), which the proxy resolved to `resolvedIp`. */
export function decideName(compiled: CompiledPolicy, name: string, resolvedIp: string): Decision {
  const byName = matchName(compiled, name);
  if (byName === "allow") return { verdict: "allow", reason: "allowOut name" };
  if (byName === "deny") return { verdict: "deny", reason: "denyOut name" };
  return decideAddress(compiled, resolvedIp);
}

// ---- Guardrails: what no policy reaches ----------------------------------------------------------------

export interface GuardedRange {
  cidr: string;
  reason: string;
}

/** The host itself whatever it is called: never reachable, never openable. */
export const GUARDRAIL_FIXED_CIDRS: readonly GuardedRange[] = [
  // Connecting to 0.0.0.0 reaches the host's own listeners on Linux.
  { cidr: "0.0.0.0/8", reason: "this host (0.0.0.0/8)" },
  { cidr: "127.0.0.0/8", reason: "loopback" },
];

/** Blocked unless the operator opens a range covering the address. */
export const GUARDRAIL_OPENABLE_CIDRS: readonly GuardedRange[] = [
  { cidr: "169.254.0.0/16", reason: "link-local (cloud metadata)" },
  { cidr: "224.0.0.0/3", reason: "multicast or reserved" },
  { cidr: "10.0.0.0/8", reason: "private (RFC 1918)" },
  { cidr: "172.16.0.0/12", reason: "private (RFC 1918)" },
  { cidr: "192.168.0.0/16", reason: "private (RFC 1918)" },
  { cidr: "100.64.0.0/10", reason: "shared address space (100.64/10)" },
];

/** Every range blocked by default, for nftables rules (before the host's addresses and the sandbox range). */
export const GUARDRAIL_DEFAULT_CIDRS: readonly GuardedRange[] = [...GUARDRAIL_FIXED_CIDRS, ...GUARDRAIL_OPENABLE_CIDRS];

export interface GuardrailsConfig {
  /** The daemon-wide range sandboxes get addresses from: other sandboxes are never reachable. */
  sandboxRange: string;
  /** The host's own addresses (every interface): never reachable, whatever is opened. */
  hostAddresses: string[];
  /** CIDRs the operator opened (daemon configuration): private ranges they cover become reachable. */
  opened: string[];
  /** Tests only: lets an opened range cover loopback, so a test can reach its own servers on 127.0.0.1. */
  testOnlyOpenLoopback?: boolean;
}

interface Guard {
  cidr: Cidr;
  reason: string;
}

const compileGuards = (ranges: readonly GuardedRange[]): Guard[] =>
  ranges.map((r) => {
    const cidr = parseCidr(r.cidr);
    if (cidr === null) throw new Error(`guardrail range ${r.cidr} is not a CIDR`);
    return { cidr, reason: r.reason };
  });

/** Says whether an address is out of every sandbox's reach, whatever its policy. */
export class Guardrails {
  private readonly fixed: Guard[];
  private readonly openable: Guard[];
  private readonly opened: Cidr[];

  constructor(config: GuardrailsConfig) {
    const range = parseCidr(config.sandboxRange);
    if (range === null) throw new Error(`sandbox range ${config.sandboxRange} is not a CIDR`);
    const hosts = config.hostAddresses.map((a) => {
      const n = parseIpv4(a);
      if (n === null) throw new Error(`host address ${a} is not an IPv4 address`);
      return { cidr: { network: n, prefix: 32 }, reason: "this host" };
    });
    const loopbackOpen = config.testOnlyOpenLoopback === true;
    this.fixed = [
      ...hosts,
      { cidr: range, reason: "the sandbox range" },
      ...compileGuards(loopbackOpen ? GUARDRAIL_FIXED_CIDRS.filter((g) => g.cidr !== "127.0.0.0/8") : GUARDRAIL_FIXED_CIDRS),
    ];
    this.openable = [
      ...compileGuards(GUARDRAIL_OPENABLE_CIDRS),
      ...(loopbackOpen ? compileGuards(GUARDRAIL_FIXED_CIDRS.filter((g) => g.cidr === "127.0.0.0/8")) : []),
    ];
    this.opened = config.opened.map((o) => {
      const c = parseCidr(o);
      if (c === null) throw new Error(`opened range ${o} is not a CIDR`);
      return c;
    });
  }

  /** Why `ip` is never reachable, or null when a policy may decide. */
  blocked(ip: string): string | null {
    const address = parseIpv4(ip);
    if (address === null) return "not an IPv4 address";
    for (const g of this.fixed) if (cidrContains(g.cidr, address)) return g.reason;
    for (const g of this.openable) {
      if (cidrContains(g.cidr, address) && !this.opened.some((o) => cidrContains(o, address))) return g.reason;
    }
    return null;
  }
}

// ---- Names the sandbox sends (Host, SNI) -------------------------------------------------------------

export type HostText = { kind: "name"; name: string } | { kind: "ip" } | { kind: "invalid" };

const hostLabel = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A Host header's host (port already stripped) or an SNI: a DNS name (lowercased, trailing dot dropped),
 * an IP literal (IPv4, or IPv6 in brackets or bare), or something no resolver would take.
 */
export function classifyHost(text: string): HostText {
  const t = normalizeName(text);
  if (parseIpv4(t) !== null || /^\[?[0-9a-f:.]*:[0-9a-f:.]*\]?$/.test(t)) return { kind: "ip" };
  if (t.length === 0 || t.length > 253) return { kind: "invalid" };
  return t.split(".").every((l) => hostLabel.test(l)) ? { kind: "name", name: t } : { kind: "invalid" };
}
