import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Sqlite from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { E2bStore } from "../e2b/e2b-store.js";
import { Database, type Connection } from "./database.js";
import { MIGRATIONS } from "./migrations.js";
import { SandboxStore } from "./sandbox-store.js";

// Files made by the daemon before the shared Database: SandboxStore and E2bStore each opened stasis.db on
// their own connection. The fixture below is their constructors' DDL, copied verbatim; it must never change.

/** SandboxStore's migrations, numbered by user_version. */
const LEGACY_SANDBOX_MIGRATIONS = [
  `CREATE TABLE sandboxes (
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
  `ALTER TABLE sandboxes ADD COLUMN standby_since INTEGER;`,
  `ALTER TABLE sandboxes ADD COLUMN on_timeout TEXT NOT NULL DEFAULT 'kill';
   ALTER TABLE sandboxes ADD COLUMN idle_timeout_ms INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE sandboxes ADD COLUMN hibernate_after_ms INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE sandboxes ADD COLUMN forked_from TEXT;`,
  `ALTER TABLE sandboxes ADD COLUMN standby_reason TEXT;
   UPDATE sandboxes SET standby_reason = CASE
     WHEN standby_since IS NULL THEN NULL
     WHEN state_reason LIKE 'idle%' OR state_reason LIKE 'paused for%' THEN 'idle'
     WHEN state_reason LIKE 'lifetime%' THEN 'lifetime'
     ELSE 'requested' END;`,
  `ALTER TABLE sandboxes ADD COLUMN pooled INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE sandboxes ADD COLUMN created_via TEXT NOT NULL DEFAULT 'cold';
   UPDATE sandboxes SET created_via = 'fork' WHERE forked_from IS NOT NULL;`,
];

/** The old SandboxStore constructor, with the migrations of a release that had `upTo` of them. */
function legacySandboxStore(path: string, upTo = LEGACY_SANDBOX_MIGRATIONS.length): Connection {
  const db = new Sqlite(path);
  chmodSync(path, 0o600);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  const version = db.pragma("user_version", { simple: true }) as number;
  for (let v = version; v < upTo; v++) {
    db.transaction(() => {
      db.exec(LEGACY_SANDBOX_MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return db;
}

/** The old E2bStore constructor: its own connection, tables made outside user_version. */
function legacyE2bStore(path: string): Connection {
  const db = new Sqlite(path);
  db.pragma("journal_mode = WAL");
  db.pragma("busy_timeout = 5000");
  db.exec(`
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
  return db;
}

const dirs: string[] = [];
const open: { close(): unknown }[] = [];
function dbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "stasis-upgrade-"));
  dirs.push(dir);
  return join(dir, "stasis.db");
}
function openDb(path: string): Database {
  const db = new Database(path);
  open.push(db);
  return db;
}
afterEach(() => {
  open.splice(0).forEach((db) => db.close());
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

const conn = (db: Database): Connection => db.statement("SELECT 1").database;
const rows = (c: Connection, table: string, key: string) => c.prepare(`SELECT * FROM ${table} ORDER BY ${key}`).all();
/** Every table's columns and indexes: what a schema is, whatever DDL text made it. */
function schema(c: Connection): unknown {
  const tables = c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
  return tables.map(({ name }) => ({
    name,
    columns: c.pragma(`table_info(${name})`),
    indexes: (c.pragma(`index_list(${name})`) as { name: string }[]).map((i) => ({ ...i, columns: c.pragma(`index_xinfo(${i.name})`) })),
  }));
}
function freshSchema(): unknown {
  return schema(conn(openDb(dbPath())));
}

const KEY = `e2b_${"ab12".repeat(10)}`;
const hash = (key: string) => createHash("sha256").update(key).digest("hex");

describe("Database over a file from the daemon before it", () => {
  it("continues today's file (sandboxes at version 5, E2B tables beside it) with every row as it was", () => {
    const path = dbPath();
    const sandboxes = legacySandboxStore(path);
    const e2b = legacyE2bStore(path);
    const insert = sandboxes.prepare(
      `INSERT INTO sandboxes (id, template, runtime, state, state_reason, cpu, memory_mib, disk_mib, env, metadata, timeout_ms, created_at, expires_at,
                              standby_since, standby_reason, on_timeout, idle_timeout_ms, hibernate_after_ms, forked_from, pooled, created_via)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    insert.run("sbx_run", "base", "gvisor", "running", null, 0.5, 512, 1024, '{"TOKEN":"s3cr\\u00e9t"}', '{"team":"ml"}', 300000, 1764000000000, 1764000300000, null, null, "standby", 15000, 600000, null, 0, "cold");
    insert.run("sbx_hib", "py", "gvisor", "hibernated", "idle for 15s", 2, 2048, 4096, "{}", "{}", 0, 1764000000001, null, 1764000100000, "idle", "standby", 15000, 600000, null, 0, "snapshot");
    insert.run("sbx_fork", "base", "crun", "paused", "requested", 1, 512, 1024, "{}", '{"a":"b"}', 60000, 1764000000002, 1764000060000, 1764000001000, "requested", "kill", 0, 0, "sbx_run", 0, "fork");
    insert.run("sbx_pool", "base", "gvisor", "paused", null, 1, 512, 1024, "{}", "{}", 300000, 1764000000003, null, null, null, "standby", 15000, 600000, null, 1, "warm_pool");
    e2b.prepare("INSERT INTO e2b_keys (id, name, key_hash, prefix, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?)").run("ek_000000000001", "ci", hash(KEY), KEY.slice(0, 10), 1764000000000, 1764000500000);
    e2b.prepare("INSERT INTO e2b_keys (id, name, key_hash, prefix, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?)").run("ek_000000000002", "unused", hash("other"), "e2b_00000", 1764000000001, null);
    e2b.prepare("INSERT INTO e2b_sandboxes (sandbox_id, auto_resume) VALUES (?, ?)").run("sbx_run", 1);
    e2b.prepare("INSERT INTO e2b_sandboxes (sandbox_id, auto_resume) VALUES (?, ?)").run("sbx_hib", 0);
    const before = { sandboxes: rows(sandboxes, "sandboxes", "id"), keys: rows(e2b, "e2b_keys", "id"), options: rows(e2b, "e2b_sandboxes", "sandbox_id") };
    expect(before.sandboxes).toHaveLength(4);
    sandboxes.close();
    e2b.close();

    const db = openDb(path);
    expect(db.version).toBe(MIGRATIONS.length);
    const c = conn(db);
    // Every row as it was; columns added since read their defaults (agent: null, the configured one;
    // network: null, a sandbox from before networking has none).
    const upgraded = (rows(c, "sandboxes", "id") as Record<string, unknown>[]).map(({ agent, network, ...rest }) => {
      expect(agent).toBeNull();
      expect(network).toBeNull();
      return rest;
    });
    expect({ sandboxes: upgraded, keys: rows(c, "e2b_keys", "id"), options: rows(c, "e2b_sandboxes", "sandbox_id") }).toEqual(before);
    expect(schema(c)).toEqual(freshSchema());

    // And the repositories read them as before.
    const store = new SandboxStore(db);
    expect(store.get("sbx_run")).toMatchObject({ cpu: 0.5, env: { TOKEN: "s3crét" }, metadata: { team: "ml" }, expiresAt: 1764000300000 });
    expect(store.get("sbx_hib")).toMatchObject({ state: "hibernated", standbySince: 1764000100000, standbyReason: "idle", createdVia: "snapshot" });
    expect(store.pooled().map((r) => r.id)).toEqual(["sbx_pool"]);
    expect(store.live().map((r) => r.id).sort()).toEqual(["sbx_fork", "sbx_hib", "sbx_pool", "sbx_run"]);
    const keys = new E2bStore(db);
    expect(keys.findKey(KEY)).toBe("ek_000000000001");
    expect(keys.listKeys().map((k) => k.name)).toEqual(["ci", "unused"]);
    expect(keys.autoResume("sbx_run")).toBe(true);
  });

  it("continues a file of an older release through the sandbox migrations it lacked", () => {
    // Version 2: no E2B, no standby policy; sandboxes in standby kept their reason as free text.
    const path = dbPath();
    const old = legacySandboxStore(path, 2);
    const insert = old.prepare(
      `INSERT INTO sandboxes (id, template, runtime, state, state_reason, cpu, memory_mib, disk_mib, env, metadata, timeout_ms, created_at, expires_at, standby_since)
       VALUES (?, 'base', 'gvisor', ?, ?, 1, 512, 1024, '{}', '{}', 300000, ?, NULL, ?)`,
    );
    insert.run("sbx_idle", "paused", "idle for 15s", 1, 100);
    insert.run("sbx_life", "paused", "lifetime ended", 2, 200);
    insert.run("sbx_req", "paused", "by request", 3, 300);
    insert.run("sbx_awake", "running", null, 4, null);
    old.close();

    const db = openDb(path);
    expect(db.version).toBe(MIGRATIONS.length);
    expect(schema(conn(db))).toEqual(freshSchema());
    const store = new SandboxStore(db);
    expect(store.get("sbx_idle")).toMatchObject({ standbySince: 100, standbyReason: "idle", onTimeout: "kill", idleTimeoutMs: 0, pooled: false, createdVia: "cold" });
    expect(store.get("sbx_life")?.standbyReason).toBe("lifetime");
    expect(store.get("sbx_req")?.standbyReason).toBe("requested");
    expect(store.get("sbx_awake")).toMatchObject({ standbySince: null, standbyReason: null });
  });

  it("adopts the E2B tables of a release that had them before warm pools (version 4)", () => {
    const path = dbPath();
    const old = legacySandboxStore(path, 4);
    const e2b = legacyE2bStore(path);
    old.prepare(
      `INSERT INTO sandboxes (id, template, runtime, state, cpu, memory_mib, disk_mib, env, metadata, timeout_ms, created_at, forked_from)
       VALUES ('sbx_child', 'base', 'gvisor', 'running', 1, 512, 1024, '{}', '{}', 0, 1, 'sbx_parent')`,
    ).run();
    e2b.prepare("INSERT INTO e2b_keys (id, name, key_hash, prefix, created_at) VALUES ('ek_1', 'k', ?, 'e2b_ab12ab', 1)").run(hash(KEY));
    old.close();
    e2b.close();

    const db = openDb(path);
    expect(db.version).toBe(MIGRATIONS.length);
    expect(new SandboxStore(db).get("sbx_child")).toMatchObject({ forkedFrom: "sbx_parent", createdVia: "fork", pooled: false });
    expect(new E2bStore(db).findKey(KEY)).toBe("ek_1");
  });

  it("adopts E2B tables made on a file that never had the sandboxes table", () => {
    const path = dbPath();
    const e2b = legacyE2bStore(path);
    e2b.prepare("INSERT INTO e2b_sandboxes (sandbox_id, auto_resume) VALUES ('sbx_x', 1)").run();
    e2b.close();

    const db = openDb(path);
    expect(db.version).toBe(MIGRATIONS.length);
    expect(schema(conn(db))).toEqual(freshSchema());
    expect(new E2bStore(db).autoResume("sbx_x")).toBe(true);
  });
});
