import { runCommand, mustRun } from "../runtime/run-command.js";

/** Interfaces with a default route: the only ones sandbox and build traffic may leave by. */
export async function uplinks(): Promise<string[]> {
  const out = await runCommand("ip", ["-4", "route", "show", "default"], { timeoutMs: 10_000 });
  return [...new Set([...out.stdout.matchAll(/\bdev (\S+)/g)].map((m) => m[1] ?? ""))].filter((d) => /^[\w.@-]+$/.test(d) && !d.startsWith("stb") && !d.startsWith("sx")).sort();
}

/** The policy of the `iptables` FORWARD chain (`ACCEPT`, `DROP`), or null without iptables. */
export async function hostForwardPolicy(): Promise<string | null> {
  const listed = await runCommand("iptables", ["-w", "5", "-S", "FORWARD"], { timeoutMs: 10_000 });
  return listed.code === 0 ? (/^-P FORWARD (\S+)$/m.exec(listed.stdout)?.[1] ?? null) : null;
}

let queue: Promise<void> = Promise.resolve();

/**
 * A host firewall whose FORWARD policy drops (Docker sets it, ufw by default) would drop our traffic
 * whatever our own table accepts: every base chain on a hook must accept. So while the policy of the
 * `iptables` FORWARD chain (the one Docker and ufw manage) is not ACCEPT, two rules at its top accept
 * traffic from our interfaces (`pattern`, iptables style: `stb+`) and replies to them; our own table still
 * drops what they must not reach. The rules stay (at most once each) after the daemon stops.
 */
export function allowThroughHostFirewall(pattern: string): Promise<void> {
  const next = queue.then(async () => {
    const policy = await hostForwardPolicy();
    if (policy === null || policy === "ACCEPT") return;
    const rules = [
      ["-o", pattern, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
      ["-i", pattern, "-j", "ACCEPT"],
    ];
    for (const rule of rules) {
      const present = await runCommand("iptables", ["-w", "5", "-C", "FORWARD", ...rule], { timeoutMs: 10_000 });
      if (present.code !== 0) await mustRun("iptables", ["-w", "5", "-I", "FORWARD", "1", ...rule], { timeoutMs: 20_000 });
    }
  });
  queue = next.catch(() => {});
  return next;
}
