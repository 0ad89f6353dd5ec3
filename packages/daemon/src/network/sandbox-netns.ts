import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { runCommand } from "../runtime/run-command.js";
import type { SandboxLink } from "./addresses.js";

const NETNS_DIR = "/var/run/netns";

/** Names of one daemon's namespaces and host-side interfaces: its tag keeps daemons on one host apart. */
export class NetnsNames {
  constructor(readonly tag: string) {}

  netns(sandboxId: string): string {
    return `stasis-${this.tag}-${sandboxId}`;
  }

  netnsPath(sandboxId: string): string {
    return `${NETNS_DIR}/${this.netns(sandboxId)}`;
  }

  /** `sx` + tag + the id's last 7 characters: 15, the kernel's limit for an interface name. */
  hostInterface(sandboxId: string): string {
    return `sx${this.tag}${sandboxId.slice(-7)}`;
  }

  /** The sandbox ids of this daemon's namespaces on the host now. */
  present(): string[] {
    let entries: string[] = [];
    try {
      entries = readdirSync(NETNS_DIR);
    } catch {
      return [];
    }
    const prefix = `stasis-${this.tag}-`;
    return entries.filter((e) => e.startsWith(prefix)).map((e) => e.slice(prefix.length));
  }
}

async function ipBatch(args: string[], lines: string[]): Promise<void> {
  const out = await runCommand("ip", [...args, "-batch", "-"], { timeoutMs: 10_000, input: lines.join("\n") + "\n" });
  if (out.code !== 0) throw new Error(`ip ${args.join(" ")} -batch failed: ${out.stderr.trim() || `exit ${out.code}`}`);
}

/**
 * Makes the sandbox's namespace anew: one veth pair, the host's end in the host namespace with the link's
 * gateway, `eth0` inside with the sandbox's address and a default route. IPv4 only: neither end gets an
 * IPv6 address (addrgenmode none), so no link-local path reaches host services listening on [::]. A
 * namespace left from an earlier incarnation is removed first: runsc takes the addresses off `eth0` when
 * it starts, so each incarnation needs a fresh one. Two `ip` runs, about 10 ms.
 */
export async function createSandboxNetns(names: NetnsNames, sandboxId: string, link: SandboxLink): Promise<string> {
  await removeSandboxNetns(names, sandboxId);
  const ns = names.netns(sandboxId);
  const hostIf = names.hostInterface(sandboxId);
  try {
    await ipBatch([], [`netns add ${ns}`, `link add ${hostIf} type veth peer name eth0 netns ${ns}`, `link set ${hostIf} addrgenmode none`, `addr add ${link.gateway}/30 dev ${hostIf}`, `link set ${hostIf} up`]);
    // Strict reverse-path filtering: a packet claiming another sandbox's source address is dropped.
    setSysctl(`ipv4/conf/${hostIf}/rp_filter`, "1");
    setSysctl(`ipv6/conf/${hostIf}/disable_ipv6`, "1");
    await ipBatch(["-n", ns], ["link set eth0 addrgenmode none", `addr add ${link.address}/30 dev eth0`, "link set eth0 up", "link set lo up", `route add default via ${link.gateway}`]);
  } catch (err) {
    await removeSandboxNetns(names, sandboxId);
    throw err;
  }
  return names.netnsPath(sandboxId);
}

/**
 * The namespace of a sandbox whose runtime stopped for a moment (a fork's source, checkpointed and
 * restored at once) gets back what runsc took over when it started: `eth0`'s address and the default
 * route. One `ip` run instead of the namespace, the veth pair and the rules made anew. Null when the
 * namespace is not there.
 */
export async function readdressSandboxNetns(names: NetnsNames, sandboxId: string, link: SandboxLink): Promise<string | null> {
  if (!existsSync(names.netnsPath(sandboxId))) return null;
  await ipBatch(["-n", names.netns(sandboxId)], [`addr replace ${link.address}/30 dev eth0`, "link set eth0 up", `route replace default via ${link.gateway}`]);
  return names.netnsPath(sandboxId);
}

/** Removes the namespace (its veth pair goes with it) and a host-side interface left without one. Idempotent. */
export async function removeSandboxNetns(names: NetnsNames, sandboxId: string): Promise<void> {
  const hostIf = names.hostInterface(sandboxId);
  if (existsSync(names.netnsPath(sandboxId))) await runCommand("ip", ["netns", "del", names.netns(sandboxId)], { timeoutMs: 10_000 });
  // Deleting a namespace removes its veth asynchronously; delete the host end now so the name is free.
  if (existsSync(`/sys/class/net/${hostIf}`)) await runCommand("ip", ["link", "del", hostIf], { timeoutMs: 10_000 });
}

/** Bytes through the sandbox's host-side interface: what it received is what the sandbox sent. */
export function interfaceCounters(names: NetnsNames, sandboxId: string): { sentBytes: number; receivedBytes: number } | null {
  const dir = `/sys/class/net/${names.hostInterface(sandboxId)}/statistics`;
  try {
    const read = (f: string) => Number(readFileSyncTrim(`${dir}/${f}`));
    return { sentBytes: read("rx_bytes"), receivedBytes: read("tx_bytes") };
  } catch {
    return null;
  }
}

function readFileSyncTrim(path: string): string {
  return readFileSync(path, "utf8").trim();
}

function setSysctl(key: string, value: string): void {
  const path = `/proc/sys/net/${key}`;
  if (existsSync(path)) writeFileSync(path, `${value}\n`);
}
