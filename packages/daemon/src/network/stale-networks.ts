import { existsSync, readdirSync } from "node:fs";
import { runCommand } from "../runtime/run-command.js";

/** The comment each daemon's table carries: whose it is, so a later daemon can tell a dead one's leftovers. */
export function ownerComment(dataDir: string): string {
  return `stasis data dir ${dataDir}`;
}

/**
 * Tables (and their namespaces) of daemons whose data folder is gone (a removed test daemon, a
 * reinstalled host): nothing can own them any more, so they go. Tables of live or unknown owners stay.
 */
export async function removeOrphanedNetworks(ownTable: string): Promise<string[]> {
  const listed = await runCommand("nft", ["list", "tables"], { timeoutMs: 10_000 });
  const tables = [...listed.stdout.matchAll(/^table ip (stasis_[0-9a-f]{6})$/gm)].map((m) => m[1]!).filter((t) => t !== ownTable);
  const removed: string[] = [];
  for (const table of tables) {
    const text = (await runCommand("nft", ["list", "table", "ip", table], { timeoutMs: 10_000 })).stdout;
    const owner = /comment "stasis data dir (.+)"/.exec(text)?.[1];
    if (!owner || existsSync(owner)) continue;
    const tag = table.slice("stasis_".length);
    let namespaces: string[] = [];
    try {
      namespaces = readdirSync("/var/run/netns").filter((n) => n.startsWith(`stasis-${tag}-`));
    } catch {
      // No namespaces at all.
    }
    for (const ns of namespaces) await runCommand("ip", ["netns", "del", ns], { timeoutMs: 10_000 });
    await runCommand("nft", ["delete", "table", "ip", table], { timeoutMs: 10_000 });
    removed.push(table);
  }
  return removed;
}
