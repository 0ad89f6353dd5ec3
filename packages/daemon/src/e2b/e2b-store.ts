import { createHash, randomBytes } from "node:crypto";
import Database from "better-sqlite3";
import type { CreatedE2bKey, E2bKey } from "@stasis/protocol";

type KeyRow = { id: string; name: string; prefix: string; created_at: number; last_used_at: number | null };

/** How often a key's last use is written (a write per request would be wasted work). */
const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * What the E2B-compatible surface keeps beside the sandboxes: its API keys (hashes only) and, per sandbox,
 * the E2B options that Stasis's own record has no field for. Same SQLite file as the sandbox store, own
 * connection and tables.
 */
export class E2bStore {
  private readonly db: Database.Database;
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS e2b_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
      );
      CREATE TABLE IF NOT EXISTS e2b_sandboxes (
        sandbox_id TEXT PRIMARY KEY,
        auto_resume INTEGER NOT NULL DEFAULT 0
      );`);
  }

  createKey(name: string): CreatedE2bKey {
    // The format older `e2b` SDKs insist on: e2b_ followed by hex.
    const key = `e2b_${randomBytes(20).toString("hex")}`;
    const row: KeyRow = { id: `ek_${randomBytes(6).toString("hex")}`, name, prefix: key.slice(0, 10), created_at: Date.now(), last_used_at: null };
    this.db
      .prepare("INSERT INTO e2b_keys (id, name, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)")
      .run(row.id, row.name, hashKey(key), row.prefix, row.created_at);
    return { ...toKey(row), key };
  }

  listKeys(): E2bKey[] {
    return (this.db.prepare("SELECT id, name, prefix, created_at, last_used_at FROM e2b_keys ORDER BY created_at, id").all() as KeyRow[]).map(toKey);
  }

  deleteKey(id: string): boolean {
    return this.db.prepare("DELETE FROM e2b_keys WHERE id = ?").run(id).changes > 0;
  }

  /** The id of the key, when `key` is one of ours. Only hashes are compared. */
  findKey(key: string): string | null {
    if (!/^e2b_[0-9a-f]{40}$/.test(key)) return null;
    const row = this.db.prepare("SELECT id FROM e2b_keys WHERE key_hash = ?").get(hashKey(key)) as { id: string } | undefined;
    if (!row) return null;
    const now = Date.now();
    if (now - (this.lastUsedWritten.get(row.id) ?? 0) >= LAST_USED_RESOLUTION_MS) {
      this.lastUsedWritten.set(row.id, now);
      this.db.prepare("UPDATE e2b_keys SET last_used_at = ? WHERE id = ?").run(now, row.id);
    }
    return row.id;
  }

  /** E2B's `autoResume`: traffic to a sandbox paused at its lifetime's end wakes it. */
  setAutoResume(sandboxId: string, autoResume: boolean): void {
    this.db
      .prepare("INSERT INTO e2b_sandboxes (sandbox_id, auto_resume) VALUES (?, ?) ON CONFLICT (sandbox_id) DO UPDATE SET auto_resume = excluded.auto_resume")
      .run(sandboxId, autoResume ? 1 : 0);
  }

  autoResume(sandboxId: string): boolean {
    const row = this.db.prepare("SELECT auto_resume FROM e2b_sandboxes WHERE sandbox_id = ?").get(sandboxId) as { auto_resume: number } | undefined;
    return row?.auto_resume === 1;
  }

  forgetSandbox(sandboxId: string): void {
    this.db.prepare("DELETE FROM e2b_sandboxes WHERE sandbox_id = ?").run(sandboxId);
  }

  close(): void {
    this.db.close();
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
