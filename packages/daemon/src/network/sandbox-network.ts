import { readFileSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import type { Logger } from "pino";
import { parseIpv4, type NetworkPolicy, type ResolvedNetworkPolicy } from "@stasis/protocol";
import { Limiter } from "../concurrency/limiter.js";
import { crashPoint } from "../runtime/crash-point.js";
import type { NetworkConfig } from "../config/network-config.js";
import { runCommand } from "../runtime/run-command.js";
import type { SandboxNetworkRecord } from "../store/sandbox-store.js";
import { AddressRange, formatIpv4 } from "./addresses.js";
import { fullRuleset, removeSandboxRules, sandboxRules, tableExists, type FirewallSandbox, type FirewallSetup } from "./firewall.js";
import { NftQueue } from "./nft-queue.js";
import { allowThroughHostFirewall, uplinks } from "./host-firewall.js";
import { createSandboxNetns, interfaceCounters, NetnsNames, readdressSandboxNetns, removeSandboxNetns } from "./sandbox-netns.js";
import { removeOrphanedNetworks } from "./stale-networks.js";
import { compiledPolicyOf, needsProxy as policyNamesDomains } from "./egress-decision.js";
import type { SandboxOnNetwork } from "./types.js";

/** The ports the daemon's DNS server and egress proxy listen on (started before the network). */
export interface NetworkPorts {
  dns: number;
  http: number;
  tls: number;
}

/** Namespaces a restart removes at once. */
const PRUNE_PARALLELISM = 8;

/** How a start got its network: a namespace made anew, or one kept while its runtime stopped. */
export type AttachKind = "made" | "kept";

/** A sandbox as the network layer needs it: its id and what its record keeps of its network. */
export interface NetworkedSandbox {
  id: string;
  network: SandboxNetworkRecord | null;
}

/** Whether a policy needs TCP 80/443 through the proxy: domain targets, or secrets to inject. */
export function needsProxy(network: SandboxNetworkRecord): boolean {
  return Object.keys(network.placeholders).length > 0 || Object.keys(network.headerRules ?? {}).length > 0 || policyNamesDomains(compiledPolicyOf(network.policy));
}

/**
 * Sandboxes' networks on this host: one namespace and veth pair per sandbox (a /30 from the daemon's
 * range), NAT out by the uplinks, and an nftables table that applies each sandbox's policy. A sandbox's
 * address and policy live in its record; this keeps the host in line with the records.
 */
export class SandboxNetworks {
  readonly range: AddressRange;
  readonly names: NetnsNames;
  private readonly setup: FirewallSetup;
  /** Sandboxes with a namespace now, by address: what DNS and the proxy look their clients up in. */
  private readonly byAddress = new Map<string, SandboxOnNetwork>();
  /** Addresses handed out, persisted in records; a create reserves one here before its record holds it. */
  private readonly taken = new Set<string>();
  /** Table changes: one `nft` run at a time, changes that queue meanwhile together. */
  private readonly nft = new NftQueue();
  /** The rules in the table now, by sandbox: what a rebuild of a table that went missing puts back. */
  private readonly ruled = new Map<string, FirewallSandbox>();
  /** A rebuild in progress: sandboxes that find the table gone at once wait for one rebuild. */
  private rebuilding: Promise<void> | null = null;

  constructor(
    readonly config: NetworkConfig,
    ports: NetworkPorts,
    private readonly log: Logger,
    private readonly hooks: { onAttach?: (seconds: number, how: AttachKind) => void; onRelease?: (id: string) => void } = {},
  ) {
    this.range = new AddressRange(config.range);
    this.names = new NetnsNames(config.tag);
    this.setup = {
      table: `stasis_${config.tag}`,
      owner: config.owner,
      range: this.range.cidr,
      openRanges: config.openRanges,
      dnsPort: ports.dns,
      httpProxyPort: ports.http,
      tlsProxyPort: ports.tls,
      maxConnections: config.maxConnections,
    };
  }

  get table(): string {
    return this.setup.table;
  }

  /** The policy a create asks for, completed with the daemon's default. */
  resolvePolicy(requested: NetworkPolicy | undefined, base?: ResolvedNetworkPolicy): ResolvedNetworkPolicy {
    return {
      internet: requested?.internet ?? base?.internet ?? this.config.internetByDefault,
      allowOut: requested?.allowOut ?? base?.allowOut ?? [],
      denyOut: requested?.denyOut ?? base?.denyOut ?? [],
    };
  }

  lookup(sourceAddress: string): SandboxOnNetwork | undefined {
    return this.byAddress.get(sourceAddress);
  }

  /**
   * At start: the table rebuilt from the records (a reboot or a firewall reload may have removed it, a crash
   * may have left it stale), and namespaces no running sandbox uses removed. `running` = sandboxes whose
   * runtime may live on (their namespace must stay); `taken` = the addresses every record holds.
   */
  async reconcile(taken: string[], running: NetworkedSandbox[]): Promise<void> {
    this.taken.clear();
    for (const address of taken) this.taken.add(address);
    const keep = new Set(running.filter((s) => s.network?.address).map((s) => s.id));
    await this.prune(keep);
    await this.prepareHost();
    const orphaned = await removeOrphanedNetworks(this.setup.table).catch(() => []);
    if (orphaned.length > 0) this.log.info({ tables: orphaned }, "removed the networks of daemons whose data folder is gone");
    const rules = running.filter((s) => keep.has(s.id)).map((s) => this.firewallView(s.id, s.network!));
    await this.nft.apply(fullRuleset(this.setup, await uplinks(), rules));
    this.ruled.clear();
    for (const r of rules) this.ruled.set(r.id, r);
    for (const s of running) if (keep.has(s.id)) this.remember(s.id, s.network!);
  }

  /** Removes this daemon's namespaces but those of `keep` (sandbox ids): what a crash left behind. */
  async prune(keep: ReadonlySet<string>): Promise<void> {
    const doomed = this.names.present().filter((id) => !keep.has(id));
    // A few at a time: each is an `ip` run or two (~20-40 ms), and a restart after a crash may find
    // hundreds (hibernated sandboxes keep theirs for a while), all before the daemon listens.
    const limiter = new Limiter(PRUNE_PARALLELISM);
    const settled = await Promise.allSettled(doomed.map((id) => limiter.run(() => removeSandboxNetns(this.names, id))));
    const failed = settled.flatMap((s) => (s.status === "rejected" ? [s.reason as unknown] : []));
    const gone = new Set(doomed);
    for (const [address, s] of this.byAddress) if (gone.has(s.id)) this.byAddress.delete(address);
    if (failed.length > 0) throw new Error(`${failed.length} of ${doomed.length} namespaces could not be removed: ${String(failed[0])}`);
  }

  private async prepareHost(): Promise<void> {
    if (readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim() !== "1") writeFileSync("/proc/sys/net/ipv4/ip_forward", "1\n");
    await allowThroughHostFirewall("sx+");
  }

  /** Gives the record an address if it has none (persist the returned record). */
  assignAddress(network: SandboxNetworkRecord): SandboxNetworkRecord {
    if (network.address) return network;
    const address = this.range.allocate(this.unusable());
    if (!address) throw new Error(`every address of ${this.range.cidr} is taken (${this.range.capacity} sandboxes); configure a larger STASIS_NETWORK_RANGE`);
    this.taken.add(address);
    return { ...network, address };
  }

  /**
   * Addresses not to hand out: those our records hold, and those whose link another daemon on this host
   * uses (its gateway address is on one of the host's interfaces): two daemons given overlapping ranges
   * would otherwise give their sandboxes the same address, and the host's routes would reach only one.
   */
  private unusable(): Set<string> {
    const out = new Set(this.taken);
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) {
        if (a.family !== "IPv4") continue;
        const n = parseIpv4(a.address);
        if (n !== null) out.add(formatIpv4(n + 1));
      }
    }
    return out;
  }

  /**
   * Before each start of the sandbox's runtime (boot, wake, fork clone): a fresh namespace with its
   * address, and its rules in the table. Returns the namespace's path for the runtime.
   */
  async attach(id: string, network: SandboxNetworkRecord): Promise<string> {
    if (!network.address) throw new Error(`sandbox ${id} has no network address`);
    const started = performance.now();
    const link = this.range.linkOf(network.address);
    // The rules name the interface, not need it: they go in while the namespace is made (~4 ms saved).
    const [made, ruled] = await Promise.allSettled([createSandboxNetns(this.names, id, link), this.applyRules(id, network)]);
    try {
      if (made.status === "rejected") throw made.reason;
      if (ruled.status === "rejected") throw ruled.reason;
      if (this.config.bandwidthMbit > 0) await this.limitBandwidth(id);
    } catch (err) {
      await removeSandboxNetns(this.names, id);
      throw err;
    }
    const path = made.value;
    this.remember(id, network);
    this.hooks.onAttach?.((performance.now() - started) / 1000, "made");
    // A crash here leaves a namespace and rules no runtime uses: the next start removes them.
    crashPoint("network.attached");
    return path;
  }

  /**
   * A start of a sandbox whose namespace and rules were kept while its runtime stopped (a fork's source):
   * its address and route back on `eth0`. Null when they were not kept (a daemon restart, a detach
   * since): the caller attaches anew.
   */
  async reattach(id: string, network: SandboxNetworkRecord): Promise<string | null> {
    if (!network.address || this.byAddress.get(network.address)?.id !== id || !this.ruled.has(id)) return null;
    const started = performance.now();
    const path = await readdressSandboxNetns(this.names, id, this.range.linkOf(network.address));
    if (path) this.hooks.onAttach?.((performance.now() - started) / 1000, "kept");
    return path;
  }

  /** Whether the sandbox's namespace and rules are in place (a running sandbox's, or one kept while it sleeps). */
  attached(id: string): boolean {
    return this.ruled.has(id);
  }

  /** A changed policy (or secrets): new connections follow it at once; open ones keep going. */
  async update(id: string, network: SandboxNetworkRecord): Promise<void> {
    if (!network.address) return;
    if (this.byAddress.get(network.address)?.id !== id) return; // not on the network now: applied at its next start
    await this.applyRules(id, network);
    this.remember(id, network);
  }

  /** The runtime stopped (hibernated, failed): its namespace and rules go; the record keeps its address. */
  async detach(id: string, network: SandboxNetworkRecord | null): Promise<void> {
    if (network?.address) this.byAddress.delete(network.address);
    await removeSandboxNetns(this.names, id);
    this.ruled.delete(id);
    await this.nft.apply(removeSandboxRules(this.setup, id, this.names.hostInterface(id))).catch(() => {
      // Already gone (never attached, or the table was rebuilt without it).
    });
  }

  /** The sandbox is deleted: as detach, and its address is free again. */
  async release(id: string, network: SandboxNetworkRecord | null): Promise<void> {
    await this.detach(id, network);
    if (network?.address) this.taken.delete(network.address);
    this.hooks.onRelease?.(id);
  }

  counters(id: string): { sentBytes: number; receivedBytes: number } | null {
    return interfaceCounters(this.names, id);
  }

  private remember(id: string, network: SandboxNetworkRecord): void {
    if (!network.address) return;
    this.byAddress.set(network.address, { id, address: network.address, policy: network.policy, placeholders: network.placeholders, ...(network.headerRules ? { headerRules: network.headerRules } : {}) });
  }

  private firewallView(id: string, network: SandboxNetworkRecord): FirewallSandbox {
    return { id, hostInterface: this.names.hostInterface(id), address: network.address!, policy: network.policy, proxied: needsProxy(network) };
  }

  /**
   * Puts the sandbox's rules in the table. The table is not checked first (listing it costs more than the
   * change itself): a change that fails because a firewall reload (`nft flush ruleset`) removed the table
   * rebuilds it with every sandbox's rules, then goes in again. It goes in again also when the table is
   * there: another sandbox's change may have rebuilt it meanwhile; a change bad in itself fails twice.
   */
  private async applyRules(id: string, network: SandboxNetworkRecord): Promise<void> {
    const view = this.firewallView(id, network);
    const script = sandboxRules(this.setup, view);
    try {
      await this.nft.apply(script);
    } catch {
      if (!(await tableExists(this.setup.table))) await this.rebuildTable();
      await this.nft.apply(script);
    }
    this.ruled.set(id, view);
  }

  private async rebuildTable(): Promise<void> {
    this.rebuilding ??= (async () => {
      this.log.warn({ table: this.setup.table }, "the nftables table was gone (a firewall reload?); rebuilding it");
      await this.nft.apply(fullRuleset(this.setup, await uplinks(), [...this.ruled.values()]));
    })().finally(() => {
      this.rebuilding = null;
    });
    await this.rebuilding;
  }

  /**
   * A token bucket on each end's way out: the host side's egress is the sandbox's download, `eth0`'s inside
   * its namespace its upload (gVisor's packets leave by a packet socket on it, through its qdisc too).
   * Shaping, not policing: queued packets wait instead of being dropped, so TCP keeps its pace.
   */
  private async limitBandwidth(id: string): Promise<void> {
    const rate = `${this.config.bandwidthMbit}mbit`;
    const burst = `${Math.max(32, Math.round((this.config.bandwidthMbit * 1000) / 8 / 10))}kb`;
    for (const [ns, dev] of [[null, this.names.hostInterface(id)], [this.names.netns(id), "eth0"]] as const) {
      const out = await runCommand("tc", [...(ns ? ["-n", ns] : []), "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms"], { timeoutMs: 10_000 });
      if (out.code !== 0) throw new Error(`tc failed: ${out.stderr.trim() || `exit ${out.code}`}`);
    }
  }
}
