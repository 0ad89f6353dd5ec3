import { createHash, randomBytes } from "node:crypto";
import type { CreatedE2bKey, E2bKey } from "@stasis/protocol";
import type { Database } from "../store/database.js";

type KeyRow = { id: string; name: string; prefix: string; created_at: number; last_used_at: number | null };

/** How often a key's last use is written (a write per request would be wasted work). */
const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * What the E2B-compatible surface keeps beside the sandboxes: its API keys (hashes only) and, per sandbox,
 * the E2B options that Stasis's own record has no field for. A repository over the daemon's shared Database
 * (its tables come from migration 6); whoever opened the Database closes it.
 */
export class E2bStore {
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(private readonly db: Database) {}

  createKey(name: string): CreatedE2bKey {
    // The format older `e2b` SDKs insist on: e2b_ followed by hex.
    const key = `e2b_${randomBytes(20).toString("hex")}`;
    const row: KeyRow = { id: `ek_${randomBytes(6).toString("hex")}`, name, prefix: key.slice(0, 10), created_at: Date.now(), last_used_at: null };
    // Synced before the key is shown (only this once): a power cut must not leave its holder with a dead key.
    this.db.durable(() =>
      this.db
        .statement("INSERT INTO e2b_keys (id, name, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)")
        .run(row.id, row.name, hashKey(key), row.prefix, row.created_at),
    );
    return { ...toKey(row), key };
  }

  listKeys(): E2bKey[] {
    return (this.db.statement("SELECT id, name, prefix, created_at, last_used_at FROM e2b_keys ORDER BY created_at, id").all() as KeyRow[]).map(toKey);
  }

  /** Synced before it answers: a revoked key must not come back after a power cut. */
  deleteKey(id: string): boolean {
    return this.db.durable(() => this.db.statement("DELETE FROM e2b_keys WHERE id = ?").run(id).changes > 0);
  }

  /** The id of the key, when `key` is one of ours. Only hashes are compared. */
  findKey(key: string): string | null {
    if (!/^e2b_[0-9a-f]{40}$/.test(key)) return null;
    const row = this.db.statement("SELECT id FROM e2b_keys WHERE key_hash = ?").get(hashKey(key)) as { id: string } | undefined;
    if (!row) return null;
    const now = Date.now();
    if (now - (this.lastUsedWritten.get(row.id) ?? 0) >= LAST_USED_RESOLUTION_MS) {
      this.lastUsedWritten.set(row.id, now);
      this.db.statement("UPDATE e2b_keys SET last_used_at = ? WHERE id = ?").run(now, row.id);
    }
    return row.id;
  }

  /** E2B's `autoResume`: traffic to a sandbox paused at its lifetime's end wakes it. */
  setAutoResume(sandboxId: string, autoResume: boolean): void {
    this.db
      .statement("INSERT INTO e2b_sandboxes (sandbox_id, auto_resume) VALUES (?, ?) ON CONFLICT (sandbox_id) DO UPDATE SET auto_resume = excluded.auto_resume")
      .run(sandboxId, autoResume ? 1 : 0);
  }

  autoResume(sandboxId: string): boolean {
    const row = this.db.statement("SELECT auto_resume FROM e2b_sandboxes WHERE sandbox_id = ?").get(sandboxId) as { auto_resume: number } | undefined;
    return row?.auto_resume === 1;
  }

  forgetSandbox(sandboxId: string): void {
    this.db.statement("DELETE FROM e2b_sandboxes WHERE sandbox_id = ?").run(sandboxId);
  }
}

function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

function toKey(r: KeyRow): E2bKey {
  return {
    id: r.id,
    name: r.name,
    prefix: r.prefix,
    createdAt: new Date(r.created_at).toISOString(),
    lastUsedAt: r.last_used_at === null ? null : new Date(r.last_used_at).toISOString(),
  };
}
