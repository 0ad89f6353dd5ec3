import type { Migration } from "./database.js";

/**
 * The schema of stasis.db, in order. Never edit or reorder an entry that has shipped: a database's
 * `user_version` counts the entries already applied to it. A new table or column is a new entry at the end.
 */
export const MIGRATIONS: readonly Migration[] = [
  // 1-5: the sandboxes table (SandboxStore), numbered exactly as SandboxStore numbered them in user_version
  // before this list existed, so the databases it made continue from where they are.
  {
    name: "sandboxes table",
    up: `CREATE TABLE sandboxes (
           id TEXT PRIMARY KEY,
           template TEXT NOT NULL,
           runtime TEXT NOT NULL,
           state TEXT NOT NULL,
           state_reason TEXT,
           cpu REAL NOT NULL,
           memory_mib INTEGER NOT NULL,
           disk_mib INTEGER NOT NULL,
           env TEXT NOT NULL,
           metadata TEXT NOT NULL,
           timeout_ms INTEGER NOT NULL,
           created_at INTEGER NOT NULL,
           expires_at INTEGER
         );
         CREATE INDEX sandboxes_created ON sandboxes (created_at DESC, id DESC);
         CREATE INDEX sandboxes_state ON sandboxes (state);`,
  },
  { name: "sandboxes.standby_since", up: `ALTER TABLE sandboxes ADD COLUMN standby_since INTEGER;` },
  {
    // Sandboxes created before automatic standby existed keep their old behaviour: killed at the end of
    // their lifetime, never paused on their own.
    name: "sandboxes standby policy",
    up: `ALTER TABLE sandboxes ADD COLUMN on_timeout TEXT NOT NULL DEFAULT 'kill';
         ALTER TABLE sandboxes ADD COLUMN idle_timeout_ms INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE sandboxes ADD COLUMN hibernate_after_ms INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE sandboxes ADD COLUMN forked_from TEXT;`,
  },
  {
    // Why a sandbox sleeps, kept apart from the free-text state_reason; rows in standby get it from that text.
    name: "sandboxes.standby_reason",
    up: `ALTER TABLE sandboxes ADD COLUMN standby_reason TEXT;
         UPDATE sandboxes SET standby_reason = CASE
           WHEN standby_since IS NULL THEN NULL
           WHEN state_reason LIKE 'idle%' OR state_reason LIKE 'paused for%' THEN 'idle'
           WHEN state_reason LIKE 'lifetime%' THEN 'lifetime'
           ELSE 'requested' END;`,
  },
  {
    name: "sandboxes warm pools",
    up: `ALTER TABLE sandboxes ADD COLUMN pooled INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE sandboxes ADD COLUMN created_via TEXT NOT NULL DEFAULT 'cold';
         UPDATE sandboxes SET created_via = 'fork' WHERE forked_from IS NOT NULL;`,
  },
  {
    // 6: the E2B surface's keys and per-sandbox options (E2bStore). E2bStore used to create these tables
    // itself on every start (IF NOT EXISTS, outside user_version), so a database from before this list may
    // hold them already, rows included: they are adopted as they are (their shape never changed).
    name: "e2b tables",
    up: `CREATE TABLE IF NOT EXISTS e2b_keys (
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
         );`,
  },
  // 7: the pinned agent binary a sandbox was started with (null: from before pinning, the configured one).
  { name: "sandboxes.agent", up: `ALTER TABLE sandboxes ADD COLUMN agent TEXT;` },
  // The sandbox's network: address, policy and secret placeholders (JSON); NULL for sandboxes without one.
  { name: "sandboxes.network", up: `ALTER TABLE sandboxes ADD COLUMN network TEXT;` },
  {
    // 9: secrets for the egress proxy (SecretStore). Values are AES-256-GCM ciphertext under a key kept outside
    // this file (secrets.key); key_id names that key, so a wrong key is told apart from a damaged row.
    // secret_uses is the audit log of injections, pruned to its newest rows.
    name: "secrets tables",
    up: `CREATE TABLE secrets (
           name TEXT PRIMARY KEY,
           hosts TEXT NOT NULL,
           ciphertext BLOB NOT NULL,
           iv BLOB NOT NULL,
           auth_tag BLOB NOT NULL,
           key_id TEXT NOT NULL,
           created_at INTEGER NOT NULL,
           updated_at INTEGER NOT NULL
         );
         CREATE TABLE secret_uses (
           id INTEGER PRIMARY KEY,
           sandbox_id TEXT NOT NULL,
           secret_name TEXT NOT NULL,
           host TEXT NOT NULL,
           used_at INTEGER NOT NULL
         );
         CREATE INDEX secret_uses_sandbox ON secret_uses (sandbox_id, id);`,
  },
  {
    // 10: custom domains of preview URLs (DomainStore): a host name served by a sandbox's port.
    name: "domains table",
    up: `CREATE TABLE domains (host TEXT PRIMARY KEY, sandbox_id TEXT NOT NULL, port INTEGER NOT NULL, created_at INTEGER NOT NULL);
         CREATE INDEX domains_sandbox ON domains (sandbox_id);`,
  },
];
