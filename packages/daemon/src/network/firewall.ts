import { parseEgressTarget, type ResolvedNetworkPolicy } from "@stasis/protocol";
import { runCommand } from "../runtime/run-command.js";
import { GUARDRAIL_DEFAULT_CIDRS } from "./egress-decision.js";
import { ownerComment } from "./stale-networks.js";

/** Addresses no sandbox reaches unless the operator opens them (the proxy's guardrails, the same list). */
export const GUARDED_RANGES = GUARDRAIL_DEFAULT_CIDRS.map((g) => g.cidr);

/** What the table needs to know of the daemon: its ports and ranges. */
export interface FirewallSetup {
  table: string;
  /** The daemon's data folder, in the table's comment (see stale-networks.ts). */
  owner: string;
  range: string;
  openRanges: string[];
  dnsPort: number;
  /** Local ports of the egress proxy for TCP 80 and 443. */
  httpProxyPort: number;
  tlsProxyPort: number;
  maxConnections: number;
}

/** One sandbox as the firewall sees it. */
export interface FirewallSandbox {
  id: string;
  hostInterface: string;
  address: string;
  policy: ResolvedNetworkPolicy;
  /** TCP 80 and 443 go through the egress proxy (domain rules, secrets). */
  proxied: boolean;
}

const chainId = (id: string) => id.replace(/[^a-z0-9]/gi, "_");

function cidrsOf(targets: string[]): string[] {
  return targets.map((t) => parseEgressTarget(t)).flatMap((t) => (t?.kind === "cidr" ? [t.prefix === 32 ? t.text.split("/")[0]! : t.text] : []));
}

function elements(items: string[]): string {
  return items.length > 0 ? ` elements = { ${items.join(", ")} }` : "";
}

/**
 * The whole table, from scratch: replaced atomically (start, and after a firewall reload removed it).
 * Sandbox traffic enters by its host-side veth. Nothing comes in but replies; nothing goes to another
 * sandbox or to the host itself but DNS and the egress proxy (both redirected to the daemon); guarded
 * ranges are refused unless opened (the sandbox range never is); the rest goes to the sandbox's own chain,
 * which applies its policy.
 */
export function fullRuleset(setup: FirewallSetup, uplinks: string[], sandboxes: FirewallSandbox[]): string {
  const t = setup.table;
  const out = uplinks.length > 0 ? `oifname != { ${uplinks.map((u) => JSON.stringify(u)).join(", ")} } ip daddr != @opened drop` : "ip daddr != @opened drop";
  const table = `table ip ${t} {
  comment ${JSON.stringify(ownerComment(setup.owner))}
  set ifaces { type ifname; }
  set guarded { type ipv4_addr; flags interval;${elements(GUARDED_RANGES)} }
  set opened { type ipv4_addr; flags interval;${elements(setup.openRanges)} }
  map egress { type ifname : verdict; }
  map proxied { type ifname : verdict; }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname != @ifaces return
    meta l4proto { tcp, udp } th dport 53 redirect to :${setup.dnsPort}
    iifname vmap @proxied
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${setup.range} oifname != @ifaces masquerade
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname != @ifaces return
    ct state established,related accept
    ct status dnat meta l4proto { tcp, udp } th dport { ${setup.dnsPort}, ${setup.httpProxyPort}, ${setup.tlsProxyPort} } accept
    reject with icmp type admin-prohibited
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    oifname @ifaces ct state established,related accept
    oifname @ifaces reject with icmp type admin-prohibited
    iifname != @ifaces return
    ip daddr ${setup.range} reject with icmp type admin-prohibited
    ip daddr @guarded ip daddr != @opened reject with icmp type admin-prohibited
    ${out}
    iifname vmap @egress
    drop
  }
}
`;
  return `table ip ${t} {}\ndelete table ip ${t}\n${table}${sandboxes.map((s) => sandboxRules(setup, s)).join("")}`;
}

/** Adds or replaces one sandbox's chains, sets and map entries (one transaction). */
export function sandboxRules(setup: FirewallSetup, s: FirewallSandbox): string {
  const t = setup.table;
  const c = chainId(s.id);
  const allow = cidrsOf(s.policy.allowOut);
  const deny = cidrsOf(s.policy.denyOut);
  const fallback = s.policy.allowOut.length > 0 || !s.policy.internet ? "reject with icmp type admin-prohibited" : "accept";
  const lines = [
    `add chain ip ${t} sb_${c}`,
    `flush chain ip ${t} sb_${c}`,
    `add chain ip ${t} nat_${c}`,
    `flush chain ip ${t} nat_${c}`,
    `add set ip ${t} allow_${c} { type ipv4_addr; flags interval; }`,
    `flush set ip ${t} allow_${c}`,
    `add set ip ${t} deny_${c} { type ipv4_addr; flags interval; }`,
    `flush set ip ${t} deny_${c}`,
    ...(allow.length > 0 ? [`add element ip ${t} allow_${c} { ${allow.join(", ")} }`] : []),
    ...(deny.length > 0 ? [`add element ip ${t} deny_${c} { ${deny.join(", ")} }`] : []),
    `add rule ip ${t} sb_${c} ip saddr != ${s.address} drop`,
    `add rule ip ${t} sb_${c} ct state new ct count over ${setup.maxConnections} reject with tcp reset`,
    `add rule ip ${t} sb_${c} ip daddr @allow_${c} accept`,
    `add rule ip ${t} sb_${c} ip daddr @deny_${c} reject with icmp type admin-prohibited`,
    `add rule ip ${t} sb_${c} ${fallback}`,
    // Domain rules and secrets: TCP 80 and 443 to the proxy, unless an allowed CIDR covers the address.
    ...(s.proxied
      ? [`add rule ip ${t} nat_${c} ip daddr @allow_${c} return`, `add rule ip ${t} nat_${c} tcp dport 80 redirect to :${setup.httpProxyPort}`, `add rule ip ${t} nat_${c} tcp dport 443 redirect to :${setup.tlsProxyPort}`]
      : []),
    `add element ip ${t} ifaces { "${s.hostInterface}" }`,
    `add element ip ${t} egress { "${s.hostInterface}" : goto sb_${c} }`,
    `add element ip ${t} proxied { "${s.hostInterface}" : goto nat_${c} }`,
  ];
  return lines.join("\n") + "\n";
}

/** Removes one sandbox's entries, chains and sets (after its interface is gone, or before). */
export function removeSandboxRules(setup: FirewallSetup, id: string, hostInterface: string): string {
  const t = setup.table;
  const c = chainId(id);
  return [
    `delete element ip ${t} egress { "${hostInterface}" }`,
    `delete element ip ${t} proxied { "${hostInterface}" }`,
    `delete element ip ${t} ifaces { "${hostInterface}" }`,
    `delete chain ip ${t} sb_${c}`,
    `delete chain ip ${t} nat_${c}`,
    `delete set ip ${t} allow_${c}`,
    `delete set ip ${t} deny_${c}`,
  ].join("\n") + "\n";
}

export async function applyNft(script: string): Promise<void> {
  const out = await runCommand("nft", ["-f", "-"], { timeoutMs: 20_000, input: script });
  if (out.code !== 0) throw new Error(`nft failed: ${out.stderr.trim().slice(0, 2000) || `exit ${out.code}`}`);
}

/** Whether the table exists (a firewall reload, `nft flush ruleset`, removes it). */
export async function tableExists(table: string): Promise<boolean> {
  return (await runCommand("nft", ["list", "table", "ip", table], { timeoutMs: 10_000 })).code === 0;
}

export async function deleteTable(table: string): Promise<void> {
  await runCommand("nft", ["delete", "table", "ip", table], { timeoutMs: 10_000 });
}
