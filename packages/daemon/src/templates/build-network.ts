import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { allowThroughHostFirewall, uplinks } from "../network/host-firewall.js";
import { leftByPreviousDaemon, mustRun, runCommand } from "../runtime/run-command.js";

/**
 * Network for template build steps (RUN, packages): each step gets a fresh network namespace with one
 * veth to the host, NATed out. Sandboxes themselves never get one. The nft table lets build traffic out
 * by the host's uplinks and forwarded replies back, drops anything a build sends to the host itself, to
 * another build or to a local bridge, and lets nothing in from outside, so a build cannot reach the
 * daemon's API or other host services (loopback is per namespace, so 127.0.0.1 is its own).
 */
const SUBNET = "10.213.0.0/16";
const TABLE = "stasis_build";
const IFACE_PREFIX = "stb";

export interface BuildNetwork {
  /** Path for the OCI spec's network namespace. */
  netnsPath: string;
  /** resolv.conf contents the step sees. */
  resolvConf: string;
  release(): Promise<void>;
}

const must = (cmd: string, args: string[], input?: string) => mustRun(cmd, args, { timeoutMs: 20_000, ...(input === undefined ? {} : { input }) });

let hostQueue: Promise<void> = Promise.resolve();

/**
 * The table: NAT out; nothing from a build to the host itself, to another build, to link-local addresses
 * (a cloud's metadata service and its credentials), or out by any interface but an uplink (so not to
 * local bridges: Docker's, libvirt's, other containers'); nothing in but replies.
 */
export function buildRuleset(uplinkNames: string[]): string {
  const out = uplinkNames.length > 0 ? `iifname "${IFACE_PREFIX}*" oifname != { ${uplinkNames.map((n) => JSON.stringify(n)).join(", ")} } drop;` : `iifname "${IFACE_PREFIX}*" drop;`;
  return `table ip ${TABLE} {}
delete table ip ${TABLE}
table ip ${TABLE} {
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; ip saddr ${SUBNET} oifname != "${IFACE_PREFIX}*" masquerade; }
  chain input { type filter hook input priority filter; policy accept; iifname "${IFACE_PREFIX}*" ct state established,related accept; iifname "${IFACE_PREFIX}*" drop; }
  chain forward { type filter hook forward priority filter; policy accept; iifname "${IFACE_PREFIX}*" ip daddr { ${SUBNET}, 169.254.0.0/16 } drop; ${out} oifname "${IFACE_PREFIX}*" ct state established,related accept; oifname "${IFACE_PREFIX}*" drop; }
}
`;
}

/**
 * Before each step: forwarding on, the table reloaded (atomically, so safe to repeat), since the uplinks
 * may have changed and a firewall reload (`flush ruleset`) may have removed it, and the host firewall's
 * FORWARD policy let through. Serialized, so two steps never race on them.
 */
function prepareHost(): Promise<void> {
  const next = hostQueue.then(async () => {
    if (readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim() !== "1") writeFileSync("/proc/sys/net/ipv4/ip_forward", "1\n");
    await must("nft", ["-f", "-"], buildRuleset(await uplinks()));
    // In the same queue: two steps checking at once would both insert the iptables rules.
    await allowThroughHostFirewall(`${IFACE_PREFIX}+`);
  });
  hostQueue = next.catch(() => {});
  return next;
}

/** Name servers a namespace can use: the host's, unless they are loopback (systemd-resolved's stub). */
export function upstreamResolvConf(): string {
  for (const file of ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    const servers = [...text.matchAll(/^nameserver\s+(\S+)/gm)].map((m) => m[1] ?? "").filter((s) => s && !s.startsWith("127.") && s !== "::1");
    if (servers.length > 0) return servers.map((s) => `nameserver ${s}`).join("\n") + "\n";
  }
  return "nameserver 1.1.1.1\nnameserver 8.8.8.8\n";
}

export async function createBuildNetwork(): Promise<BuildNetwork> {
  await prepareHost();
  const tag = randomBytes(4).toString("hex");
  const ns = `stasis-build-${process.pid}-${tag}`;
  const hostIf = `${IFACE_PREFIX}${tag}`;
  const used = (await runCommand("ip", ["-o", "-4", "addr", "show"], { timeoutMs: 10_000 })).stdout;
  // A /30 per step inside the subnet, picked at random and skipped while another daemon's step holds it.
  let block = 0;
  for (let tries = 0; tries < 20; tries++) {
    block = 1 + Math.floor(Math.random() * 16_382);
    if (!used.includes(` ${addr(block, 1)}/30`)) break;
  }
  const release = async () => {
    await runCommand("ip", ["netns", "del", ns], { timeoutMs: 10_000 });
    await runCommand("ip", ["link", "del", hostIf], { timeoutMs: 10_000 });
  };
  try {
    await must("ip", ["netns", "add", ns]);
    await must("ip", ["link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    // IPv4 only: the table filters IPv4, so the host side takes no IPv6 (no link-local path to host
    // services on [::]); strict reverse-path filtering drops packets spoofing another build's address.
    setInterfaceSysctl(`ipv6/conf/${hostIf}/disable_ipv6`, "1");
    setInterfaceSysctl(`ipv4/conf/${hostIf}/rp_filter`, "1");
    await must("ip", ["addr", "add", `${addr(block, 1)}/30`, "dev", hostIf]);
    await must("ip", ["link", "set", hostIf, "up"]);
    await must("ip", ["-n", ns, "addr", "add", `${addr(block, 2)}/30`, "dev", "eth0"]);
    await must("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    await must("ip", ["-n", ns, "link", "set", "lo", "up"]);
    await must("ip", ["-n", ns, "route", "add", "default", "via", addr(block, 1)]);
  } catch (err) {
    await release();
    throw err;
  }
  return { netnsPath: `/var/run/netns/${ns}`, resolvConf: upstreamResolvConf(), release };
}

/** Writes /proc/sys/net/<key>; absent keys (IPv6 compiled out) are fine. */
function setInterfaceSysctl(key: string, value: string): void {
  const path = `/proc/sys/net/${key}`;
  if (existsSync(path)) writeFileSync(path, `${value}\n`);
}

/** After a crash: namespaces (and with them their veth pairs) of build steps whose daemon is gone. */
export async function removeStaleBuildNetworks(): Promise<void> {
  let entries: string[] = [];
  try {
    entries = readdirSync("/var/run/netns");
  } catch {
    return;
  }
  for (const name of entries) {
    const pid = /^stasis-build-(\d+)-/.exec(name)?.[1];
    if (pid && leftByPreviousDaemon(Number(pid))) await runCommand("ip", ["netns", "del", name], { timeoutMs: 10_000 });
  }
}

/** Address `host` (1 or 2) of /30 block `block` in 10.213.0.0/16. */
function addr(block: number, host: number): string {
  const n = block * 4 + host;
  return `10.213.${(n >> 8) & 255}.${n & 255}`;
}
