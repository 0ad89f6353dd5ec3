import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";

/** The agent binary a sandbox runs, kept under its content's hash. */
export interface PinnedAgent {
  path: string;
  /** sha256 of the binary (16 hex), or "unpinned" when the source could not be read. */
  hash: string;
}

const BINARY = "stasis-agent";

/**
 * A restored sandbox keeps running the agent it was checkpointed with, and gVisor refuses a restore whose
 * bind-mounted agent file changed underneath it. So every sandbox mounts a copy kept under its content's
 * hash (`<dataDir>/agents/<hash>/stasis-agent`, written once, never changed), and records which: a daemon
 * upgraded to a new agent still wakes, forks and reattaches the sandboxes of the old one.
 */
export function pinAgent(source: string, dataDir: string): PinnedAgent {
  let bytes: Buffer;
  try {
    bytes = readFileSync(source);
  } catch {
    // Missing (doctor says so): sandboxes fail to start with the runtime's own message.
    return { path: source, hash: "unpinned" };
  }
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const path = join(dataDir, "agents", hash, BINARY);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    const partial = `${path}.partial-${process.pid}`;
    copyFileSync(source, partial);
    chmodSync(partial, 0o755);
    renameSync(partial, path);
  }
  return { path, hash };
}

/** Removes pinned agents no sandbox records any more (the current one always stays). */
export function removeUnusedAgents(dataDir: string, current: PinnedAgent, used: Iterable<string | null>): string[] {
  const root = join(dataDir, "agents");
  const keep = new Set([current.path, ...[...used].filter((p): p is string => p !== null)]);
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return removed;
  }
  for (const hash of entries) {
    const path = join(root, hash, BINARY);
    if (keep.has(path)) continue;
    rmSync(join(root, hash), { recursive: true, force: true });
    removed.push(hash);
  }
  return removed;
}
