import { existsSync } from "node:fs";
import { runCommand } from "../runtime/run-command.js";

/** Why sandboxes cannot have networks on this host, or null when they can: root, `ip`, `nft`, forwarding. */
export async function networkingProblem(): Promise<string | null> {
  if (process.getuid?.() !== 0) return "the daemon does not run as root (network namespaces and nftables need it)";
  const ip = await runCommand("ip", ["-V"], { timeoutMs: 5_000 });
  if (ip.code !== 0) return "`ip` (iproute2) is not installed: apt-get install iproute2";
  const nft = await runCommand("nft", ["--version"], { timeoutMs: 5_000 });
  if (nft.code !== 0) return "`nft` is not installed: apt-get install nftables";
  if (!existsSync("/proc/sys/net/ipv4/ip_forward")) return "this kernel has no IPv4 forwarding (/proc/sys/net/ipv4/ip_forward)";
  return null;
}
