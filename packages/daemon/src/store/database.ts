import { chmodSync, closeSync, constants, openSync } from "node:fs";
import Sqlite from "better-sqlite3";
import { MIGRATIONS } from "./migrations.js";

/** The level of ordinary commits; durable() raises it to FULL for one transaction. */
const SYNCHRONOUS = "NORMAL";

/** The raw connection, for migrations written as functions. */
export type Connection = Sqlite.Database;
/** A prepared statement, as repositories get it from `Database.statement`. */
export type Statement = Sqlite.Statement;

/** One step of the schema's history: `user_version` N means the first N of the list have been applied. */
export interface Migration {
  /** What it changes, for the error when it fails. */
  name: string;
  /** SQL (several statements allowed, never BEGIN/COMMIT) or a function; runs inside the migration's transaction. */
  up: string | ((db: Connection) => void);
}

export interface DatabaseOptions {
  /** The schema's ordered history; tests pass their own. */
  migrations?: readonly Migration[];
}

/**
 * The daemon's one SQLite connection (stasis.db): opened once, brought to the current schema, shared by every
 * repository (SandboxStore, E2bStore, ...). A repository takes this object and prepares its statements through
 * it; its tables come from an appended entry of migrations.ts.
 */
export class Database {
  private readonly db: Connection;
  /** Prepared once per connection: preparing costs more than running the store's queries. */
  private readonly statements = new Map<string, Statement>();

  constructor(path: string, options: DatabaseOptions = {}) {
    createPrivate(path);
    this.db = new Sqlite(path);
    try {
      this.db.pragma("journal_mode = WAL");
      // NORMAL: a commit is in the WAL (the OS's cache) when the call returns, so a crash of the daemon loses no
      // sandbox, and a power cut or kernel crash can never corrupt the file, only roll back its last commits.
      // FULL would fsync every commit: 5-8 ms measured on a virtio disk, blocking the event loop (better-sqlite3 is
      // synchronous) on hot paths such as the wake of a paused sandbox and a warm pool's claim. The few writes
      // that must survive a host crash too go through durable().
      this.db.pragma(`synchronous = ${SYNCHRONOUS}`);
      this.db.pragma("busy_timeout = 5000");
      migrate(this.db, options.migrations ?? MIGRATIONS, path);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  /** The schema version (`PRAGMA user_version`): how many migrations have been applied. */
  get version(): number {
    return userVersion(this.db);
  }

  /** The statement for `sql`, prepared on first use. */
  statement(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  /** Runs `fn` in one transaction (nested calls become savepoints), across repositories if need be. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /**
   * Runs `fn` in one transaction whose commit is on disk when this returns (the WAL is fsynced, with every
   * commit before it): for writes a power cut must not undo, such as a hibernated sandbox (its image is
   * synced) or a revoked key. SQLite fixes the level before a transaction begins, so this cannot be nested.
   */
  durable<T>(fn: () => T): T {
    if (this.db.inTransaction) throw new Error("a durable write cannot run inside another transaction");
    this.db.pragma("synchronous = FULL");
    try {
      return this.db.transaction(fn)();
    } finally {
      this.db.pragma(`synchronous = ${SYNCHRONOUS}`);
    }
  }

  close(): void {
    this.statements.clear();
    this.db.close();
  }
}

/** Applies the migrations past the file's version, each with its version bump in one transaction. */
function migrate(db: Connection, migrations: readonly Migration[], path: string): void {
  const found = userVersion(db);
  if (found > migrations.length) {
    // An older daemon must not write over a schema it does not know.
    throw new Error(`${path} has schema version ${found}, newer than this daemon's ${migrations.length}: it was written by a newer Stasis`);
  }
  // IMMEDIATE takes the write lock before the version is read, so two processes opening the file at once
  // cannot both apply the same step.
  const step = db.transaction((): boolean => {
    const v = userVersion(db);
    const m = migrations[v];
    if (!m) return false;
    try {
      if (typeof m.up === "string") db.exec(m.up);
      else m.up(db);
    } catch (err) {
      throw new Error(`migration ${v + 1} (${m.name}) of ${path} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    db.pragma(`user_version = ${v + 1}`);
    return true;
  });
  while (step.immediate());
}

function userVersion(db: Connection): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/**
 * Records hold every sandbox's env, which often carries secrets: the file is made 0600 before SQLite opens
 * it, and SQLite gives its -wal and -shm files the database file's mode. A file from an older daemon, or one
 * whose mode was changed, is set back to 0600 with its companions.
 */
function createPrivate(path: string): void {
  try {
    closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      chmodSync(file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}
