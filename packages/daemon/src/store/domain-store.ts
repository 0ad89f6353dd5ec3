import type { Domain } from "@stasis/protocol";
import type { Database } from "./database.js";

type Row = { host: string; sandbox_id: string; port: number; created_at: number };

const toDomain = (r: Row): Domain => ({ host: r.host, sandboxId: r.sandbox_id, port: r.port, createdAt: new Date(r.created_at).toISOString() });

/** Custom domains of preview URLs: a host name served by a sandbox's port (migration 10). */
export class DomainStore {
  constructor(private readonly db: Database) {}

  put(host: string, sandboxId: string, port: number): Domain {
    const row: Row = { host, sandbox_id: sandboxId, port, created_at: Date.now() };
    this.db.statement("INSERT INTO domains (host, sandbox_id, port, created_at) VALUES (@host, @sandbox_id, @port, @created_at) ON CONFLICT(host) DO UPDATE SET sandbox_id = @sandbox_id, port = @port, created_at = @created_at").run(row);
    return toDomain(row);
  }

  get(host: string): Domain | null {
    const row = this.db.statement("SELECT * FROM domains WHERE host = ?").get(host) as Row | undefined;
    return row ? toDomain(row) : null;
  }

  list(): Domain[] {
    return (this.db.statement("SELECT * FROM domains ORDER BY host").all() as Row[]).map(toDomain);
  }

  delete(host: string): boolean {
    return this.db.statement("DELETE FROM domains WHERE host = ?").run(host).changes > 0;
  }

  /** A deleted sandbox's domains go with it. */
  deleteForSandbox(sandboxId: string): void {
    this.db.statement("DELETE FROM domains WHERE sandbox_id = ?").run(sandboxId);
  }
}
