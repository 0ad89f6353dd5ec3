import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { E2bStore } from "../e2b/e2b-store.js";
import { Database, type Connection, type Migration } from "./database.js";
import { MIGRATIONS } from "./migrations.js";
import { SandboxStore } from "./sandbox-store.js";
import { testRecord } from "./test-records.js";

const dirs: string[] = [];
/** Closed after each test (closing twice is harmless). */
const open: Database[] = [];
function dbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "stasis-db-"));
  dirs.push(dir);
  return join(dir, "stasis.db");
}
function openDb(path: string, migrations?: readonly Migration[]): Database {
  const db = new Database(path, { migrations });
  open.push(db);
  return db;
}
afterEach(() => {
  open.splice(0).forEach((db) => db.close());
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

/** The Database's own connection (per-connection pragmas are only visible there), reached through a statement. */
const conn = (db: Database): Connection => db.statement("SELECT 1").database;
const tables = (db: Database) =>
  (conn(db).prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
const mode = (file: string) => statSync(file).mode & 0o777;

describe("Database", () => {
  it("makes a fresh file at the current version, with every repository's tables, crash-safe settings and mode 0600", () => {
    const path = dbPath();
    const db = openDb(path);
    expect(db.version).toBe(MIGRATIONS.length);
    expect(tables(db)).toEqual(["domains", "e2b_keys", "e2b_sandboxes", "sandboxes", "secret_uses", "secrets"]);
    expect(conn(db).pragma("journal_mode", { simple: true })).toBe("wal");
    expect(conn(db).pragma("synchronous", { simple: true })).toBe(1); // NORMAL
    expect(conn(db).pragma("busy_timeout", { simple: true })).toBe(5000);

    // Both repositories work over the one connection.
    const sandboxes = new SandboxStore(db);
    const e2b = new E2bStore(db);
    sandboxes.insert(testRecord("sbx_fresh", { env: { SECRET: "s" } }));
    const key = e2b.createKey("k");
    e2b.setAutoResume("sbx_fresh", true);
    expect(sandboxes.get("sbx_fresh")?.env).toEqual({ SECRET: "s" });
    expect(e2b.findKey(key.key)).toBe(key.id);
    expect(e2b.autoResume("sbx_fresh")).toBe(true);

    // The WAL and its index exist while the connection is open; none is readable by others.
    for (const file of [path, `${path}-wal`, `${path}-shm`]) expect(mode(file)).toBe(0o600);

    db.close();
    const again = openDb(path);
    expect(again.version).toBe(MIGRATIONS.length);
    expect(new SandboxStore(again).get("sbx_fresh")?.id).toBe("sbx_fresh");
    expect(new E2bStore(again).listKeys().map((k) => k.id)).toEqual([key.id]);
  });

  it("applies a migration once: reopening runs nothing again", () => {
    const path = dbPath();
    let runs = 0;
    const counted: Migration[] = [{ name: "t", up: (c) => void (runs++, c.exec("CREATE TABLE t (x INTEGER)")) }];
    openDb(path, counted).close();
    expect(openDb(path, counted).version).toBe(1);
    expect(runs).toBe(1);
  });

  it("leaves the version and schema as they were when a migration fails midway, keeping the steps before it", () => {
    const path = dbPath();
    const db = openDb(path);
    new SandboxStore(db).insert(testRecord("sbx_kept"));
    db.close();

    // Its first statement succeeds, its second fails (the column exists).
    const failing: Migration = { name: "half done", up: "CREATE TABLE half (x INTEGER); INSERT INTO half VALUES (1); ALTER TABLE sandboxes ADD COLUMN env TEXT;" };
    const later: Migration = { name: "never reached", up: "CREATE TABLE later (x INTEGER)" };
    const first: Migration = { name: "first", up: "CREATE TABLE first_step (x INTEGER)" };
    expect(() => new Database(path, { migrations: [...MIGRATIONS, first, failing, later] })).toThrow(
      new RegExp(`migration ${MIGRATIONS.length + 2} \\(half done\\) of .* failed: duplicate column name: env`),
    );

    const after = openDb(path, [...MIGRATIONS, first]);
    expect(after.version).toBe(MIGRATIONS.length + 1);
    expect(tables(after)).toEqual(["domains", "e2b_keys", "e2b_sandboxes", "first_step", "sandboxes", "secret_uses", "secrets"]);
    expect(new SandboxStore(after).get("sbx_kept")?.id).toBe("sbx_kept");
  });

  it("rolls back a failing function migration too", () => {
    const path = dbPath();
    const failing: Migration = {
      name: "throws",
      up: (c) => {
        c.exec("CREATE TABLE partial (x INTEGER)");
        throw new Error("boom");
      },
    };
    expect(() => new Database(path, { migrations: [...MIGRATIONS, failing] })).toThrow(/migration \d+ \(throws\) .* failed: boom/);
    const after = openDb(path);
    expect(after.version).toBe(MIGRATIONS.length);
    expect(tables(after)).not.toContain("partial");
  });

  it("refuses a file written by a newer schema rather than writing over it", () => {
    const path = dbPath();
    openDb(path, [...MIGRATIONS, { name: "future", up: "CREATE TABLE future (x INTEGER)" }]).close();
    expect(() => new Database(path)).toThrow(new RegExp(`schema version ${MIGRATIONS.length + 1}, newer than this daemon's ${MIGRATIONS.length}`));
  });

  it("sets an existing file back to mode 0600", () => {
    const path = dbPath();
    openDb(path).close();
    chmodSync(path, 0o644);
    openDb(path);
    expect(mode(path)).toBe(0o600);
  });

  it("commits a durable write at level FULL, then returns to NORMAL, also when it fails", () => {
    const db = openDb(dbPath());
    const level = () => conn(db).pragma("synchronous", { simple: true });
    const sandboxes = new SandboxStore(db);
    sandboxes.insert(testRecord("sbx_d"));
    expect(db.durable(() => (sandboxes.setState("sbx_d", "stopped"), level()))).toBe(2);
    expect(level()).toBe(1);
    expect(() =>
      db.durable(() => {
        sandboxes.setState("sbx_d", "failed");
        throw new Error("abort");
      }),
    ).toThrow("abort");
    expect(level()).toBe(1);
    expect(sandboxes.get("sbx_d")?.state).toBe("stopped");
    expect(() => db.transaction(() => db.durable(() => 1))).toThrow(/cannot run inside another transaction/);
  });

  it("syncs exactly the writes that must survive a power cut: a hibernated record, a new or revoked key", () => {
    const db = openDb(dbPath());
    const levels: unknown[] = [];
    const durable = db.durable.bind(db);
    db.durable = <T>(fn: () => T): T => durable(() => (levels.push(conn(db).pragma("synchronous", { simple: true })), fn()));
    const sandboxes = new SandboxStore(db);
    const e2b = new E2bStore(db);
    sandboxes.insert(testRecord("sbx_h"));
    sandboxes.setStandby("sbx_h", "paused", { since: 1, reason: "idle" }, null);
    sandboxes.setState("sbx_h", "hibernating");
    expect(levels).toEqual([]);
    sandboxes.setStandby("sbx_h", "hibernated", { since: 1, reason: "idle" }, null);
    sandboxes.setState("sbx_h", "hibernated", "the last wake failed");
    const key = e2b.createKey("k");
    e2b.deleteKey(key.id);
    expect(levels).toEqual([2, 2, 2, 2]);
    expect(sandboxes.get("sbx_h")).toMatchObject({ state: "hibernated", stateReason: "the last wake failed" });
    expect(e2b.listKeys()).toEqual([]);
  });

  it("runs writes of several repositories in one transaction", () => {
    const db = openDb(dbPath());
    const sandboxes = new SandboxStore(db);
    const e2b = new E2bStore(db);
    expect(() =>
      db.transaction(() => {
        sandboxes.insert(testRecord("sbx_tx"));
        e2b.setAutoResume("sbx_tx", true);
        throw new Error("abort");
      }),
    ).toThrow("abort");
    expect(sandboxes.get("sbx_tx")).toBeNull();
    expect(e2b.autoResume("sbx_tx")).toBe(false);
    db.transaction(() => {
      sandboxes.insert(testRecord("sbx_tx"));
      e2b.setAutoResume("sbx_tx", true);
    });
    expect(sandboxes.get("sbx_tx")?.id).toBe("sbx_tx");
    expect(e2b.autoResume("sbx_tx")).toBe(true);
  });
});
