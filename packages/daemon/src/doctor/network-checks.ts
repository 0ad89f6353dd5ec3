import { readFileSync } from "node:fs";
import type { NetworkConfig } from "../config/network-config.js";
import { hostForwardPolicy, uplinks } from "../network/host-firewall.js";
import { runCommand } from "../runtime/run-command.js";
import type { DoctorCheck } from "./doctor.js";

const FIX_TOOLS = "apt-get install iproute2 nftables (or: sudo bash scripts/install-host-deps.sh)";

/**
 * Sandboxes' networking: the tools, forwarding, an uplink, a host firewall that would drop forwarded
 * traffic, and a sandbox range that collides with the host's own routes. Warnings: without networking,
 * sandboxes still run, with no network.
 */
export async function networkChecks(config: NetworkConfig): Promise<DoctorCheck[]> {
  if (!config.enabled) return [{ name: "sandbox network", ok: true, severity: "warning", detail: "off (STASIS_NETWORK=off): sandboxes run with no network" }];
  const checks: DoctorCheck[] = [];
  const tool = async (name: string, cmd: string, args: string[]) => {
    const out = await runCommand(cmd, args, { timeoutMs: 5_000 });
    checks.push({ name, ok: out.code === 0, severity: "warning", detail: out.code === 0 ? (out.stdout || out.stderr).trim().split("\n")[0] ?? "" : "not found: sandboxes get no network", fix: FIX_TOOLS });
  };
  await tool("nft (sandbox network)", "nft", ["--version"]);
  await tool("ip (sandbox network)", "ip", ["-V"]);
  let forwarding = "";
  try {
    forwarding = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();
  } catch {
    forwarding = "missing";
  }
  checks.push({
    name: "IPv4 forwarding",
    ok: forwarding === "1" || forwarding === "0",
    severity: "warning",
    detail: forwarding === "1" ? "on" : forwarding === "0" ? "off now; the daemon turns it on when it starts (net.ipv4.ip_forward=1)" : "this kernel has no IPv4 forwarding",
    fix: "sysctl -w net.ipv4.ip_forward=1 (and net.ipv4.ip_forward=1 in /etc/sysctl.d/ to keep it)",
  });
  const [up, policy] = await Promise.all([uplinks(), hostForwardPolicy()]);
  checks.push({
    name: "uplink",
    ok: up.length > 0,
    severity: "warning",
    detail: up.length > 0 ? `sandboxes go out by ${up.join(", ")}` : "no default route: sandboxes reach nothing outside the host",
    fix: "give the host a default route",
  });
  checks.push({
    name: "host firewall",
    ok: true,
    severity: "warning",
    detail: policy === null ? "no iptables FORWARD chain" : policy === "ACCEPT" ? "FORWARD policy ACCEPT" : `FORWARD policy ${policy} (Docker or ufw): the daemon adds two accept rules for its sx+ interfaces; its own table still filters`,
  });
  const routes = await runCommand("ip", ["-4", "route", "show", "match", config.range.split("/")[0] ?? ""], { timeoutMs: 5_000 });
  const clash = routes.stdout.split("\n").filter((l) => l.trim() && !l.startsWith("default") && !/\bdev sx/.test(l));
  checks.push({
    name: "sandbox range",
    ok: clash.length === 0,
    severity: "warning",
    detail: clash.length === 0 ? `${config.range}, a /30 per sandbox; default policy: ${config.internetByDefault ? "internet" : "none"}` : `${config.range} overlaps the host's routes: ${clash.join("; ")}`,
    fix: "set STASIS_NETWORK_RANGE to a private range the host does not use",
  });
  return checks;
}
