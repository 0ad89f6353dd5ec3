import { parseEgressTarget, type CreateSecretRequest, type Secret } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import type { Database } from "../store/database.js";
import { SecretsKeyError, type SecretsKey } from "./secret-crypto.js";

type SecretRow = { name: string; hosts: string; ciphertext: Buffer; iv: Buffer; auth_tag: Buffer; key_id: string; created_at: number; updated_at: number };
type UseRow = { sandbox_id: string; secret_name: string; host: string; used_at: number };

/** A secret with its value, for the egress proxy only: never returned by the API, never logged. */
export interface RevealedSecret {
  name: string;
  hosts: string[];
  value: string;
}

/** One injection of a secret into a request: who, which, where, when (never the value). */
export interface SecretUse {
  sandboxId: string;
  secret: string;
  host: string;
  /** Epoch ms; now when left out. */
  at?: number;
}

export interface RecordedSecretUse {
  sandboxId: string;
  secret: string;
  host: string;
  usedAt: string;
}

/** What the secret interceptor reads: hosts without decrypting, and the value when a request needs it. */
export interface SecretSource {
  hostsOf(name: string): string[] | null;
  reveal(name: string): RevealedSecret | null;
}

export interface SecretStoreOptions {
  /** Audit rows kept (the newest); default 100 000. */
  maxUses?: number;
}

/** The audit log is pruned once per this many uses, not on every insert. */
const PRUNE_EVERY = 256;

/**
 * Secrets for the egress proxy over the daemon's shared Database (tables from migration 8): name, hosts and
 * the value sealed with the secrets key (secret-crypto.ts), which lives outside the database. Listing,
 * reading and deleting never need the key; only sealing (put) and revealing (a request to a secret's host) do.
 */
export class SecretStore implements SecretSource {
  private readonly maxUses: number;
  private usesSincePrune = 0;

  constructor(
    private readonly db: Database,
    private readonly key: SecretsKey,
    options: SecretStoreOptions = {},
  ) {
    this.maxUses = Math.max(1, options.maxUses ?? 100_000);
  }

  /** Creates the secret, or replaces its value and hosts; `created` says which. Synced before it answers. */
  put(request: CreateSecretRequest): { secret: Secret; created: boolean } {
    // What Node sends in a header value as it is; the contract already keeps out NUL, CR and LF.
    if (!/^[\t\x20-\x7e\x80-\xff]+$/.test(request.value)) throw new ApiError("invalid_request", "invalid body: value: a secret value can hold tabs and printable characters up to U+00FF only (it goes into HTTP headers)");
    const hosts = normalizeHosts(request.hosts);
    // A missing key file is created only while no other secret exists: with secrets sealed under a lost key,
    // quietly making a new one would hide that loss until each of them fails.
    const others = (this.db.statement("SELECT COUNT(*) AS n FROM secrets WHERE name != ?").get(request.name) as { n: number }).n;
    if (others > 0 && this.key.currentId() === null) {
      throw new SecretsKeyError(`the secrets key ${this.key.path} is missing but ${others} secret(s) are stored encrypted with it: restore it (or set STASIS_SECRETS_KEY_FILE), or delete them and set them again`);
    }
    const sealed = this.key.seal(request.value, sealContext(request.name, hosts), true);
    const now = Date.now();
    const created = this.db.durable(() => {
      const existed = this.db.statement("SELECT 1 FROM secrets WHERE name = ?").get(request.name) !== undefined;
      this.db
        .statement(
          `INSERT INTO secrets (name, hosts, ciphertext, iv, auth_tag, key_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET hosts = excluded.hosts, ciphertext = excluded.ciphertext, iv = excluded.iv,
             auth_tag = excluded.auth_tag, key_id = excluded.key_id, updated_at = excluded.updated_at`,
        )
        .run(request.name, JSON.stringify(hosts), sealed.ciphertext, sealed.iv, sealed.authTag, sealed.keyId, now, now);
      return !existed;
    });
    return { secret: this.get(request.name)!, created };
  }

  list(): Secret[] {
    return (this.db.statement("SELECT name, hosts, created_at, updated_at FROM secrets ORDER BY name").all() as SecretRow[]).map(toSecret);
  }

  get(name: string): Secret | null {
    const row = this.db.statement("SELECT name, hosts, created_at, updated_at FROM secrets WHERE name = ?").get(name) as SecretRow | undefined;
    return row ? toSecret(row) : null;
  }

  /** Synced before it answers: a deleted secret must not come back after a power cut. */
  delete(name: string): boolean {
    return this.db.durable(() => this.db.statement("DELETE FROM secrets WHERE name = ?").run(name).changes > 0);
  }

  hostsOf(name: string): string[] | null {
    const row = this.db.statement("SELECT hosts FROM secrets WHERE name = ?").get(name) as { hosts: string } | undefined;
    return row ? (JSON.parse(row.hosts) as string[]) : null;
  }

  /** The secret with its value; throws SecretsKeyError when the key is missing or not the one it was sealed with. */
  reveal(name: string): RevealedSecret | null {
    const row = this.db.statement("SELECT * FROM secrets WHERE name = ?").get(name) as SecretRow | undefined;
    if (!row) return null;
    const hosts = JSON.parse(row.hosts) as string[];
    const sealed = { ciphertext: row.ciphertext, iv: row.iv, authTag: row.auth_tag, keyId: row.key_id };
    return { name, hosts, value: this.key.open(sealed, sealContext(name, hosts), `secret '${name}'`) };
  }

  /** Appends to the audit log, which keeps its newest `maxUses` rows. */
  recordUse(use: SecretUse): void {
    this.db.statement("INSERT INTO secret_uses (sandbox_id, secret_name, host, used_at) VALUES (?, ?, ?, ?)").run(use.sandboxId, use.secret, use.host, use.at ?? Date.now());
    if (++this.usesSincePrune >= Math.min(PRUNE_EVERY, this.maxUses)) this.pruneUses();
  }

  /** Drops all but the newest `maxUses` audit rows (ids only grow, so the newest are the highest). */
  pruneUses(): void {
    this.usesSincePrune = 0;
    this.db.statement("DELETE FROM secret_uses WHERE id <= (SELECT id FROM secret_uses ORDER BY id DESC LIMIT 1 OFFSET ?)").run(this.maxUses);
  }

  /** The newest audit rows first, of one sandbox or of all. */
  uses(options: { sandboxId?: string; limit?: number } = {}): RecordedSecretUse[] {
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000));
    const rows = (
      options.sandboxId === undefined
        ? this.db.statement("SELECT sandbox_id, secret_name, host, used_at FROM secret_uses ORDER BY id DESC LIMIT ?").all(limit)
        : this.db.statement("SELECT sandbox_id, secret_name, host, used_at FROM secret_uses WHERE sandbox_id = ? ORDER BY id DESC LIMIT ?").all(options.sandboxId, limit)
    ) as UseRow[];
    return rows.map((r) => ({ sandboxId: r.sandbox_id, secret: r.secret_name, host: r.host, usedAt: new Date(r.used_at).toISOString() }));
  }
}

/** What a sealed value is bound to: moving a ciphertext to another name, or widening its hosts in the file, breaks it. */
function sealContext(name: string, hosts: string[]): string {
  return JSON.stringify(["stasis secret v1", name, hosts]);
}

/** Lowercased, without a trailing dot, de-duplicated, in the order given (the schema already checked each). */
function normalizeHosts(hosts: string[]): string[] {
  const out: string[] = [];
  for (const h of hosts) {
    const t = parseEgressTarget(h);
    const text = t?.kind === "domain" ? t.name : t?.kind === "wildcard" ? `*.${t.suffix}` : h.toLowerCase();
    if (!out.includes(text)) out.push(text);
  }
  return out;
}

function toSecret(r: SecretRow): Secret {
  return { name: r.name, hosts: JSON.parse(r.hosts) as string[], createdAt: new Date(r.created_at).toISOString(), updatedAt: new Date(r.updated_at).toISOString() };
}
