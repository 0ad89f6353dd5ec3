import type { CreatedVia, Env, Metadata, OnTimeout, ResolvedNetworkPolicy, Runtime, SandboxState, StandbyReason } from "@stasis/protocol";
import type { Database, Statement } from "./database.js";

export interface SandboxRecord {
  id: string;
  template: string;
  runtime: Runtime;
  state: SandboxState;
  stateReason: string | null;
  cpu: number;
  memoryMiB: number;
  diskMiB: number;
  env: Env;
  metadata: Metadata;
  timeoutMs: number;
  createdAt: number;
  expiresAt: number | null;
  /** When the sandbox entered standby: standby time does not count against its lifetime. */
  standbySince: number | null;
  /** Why it is in standby (null when awake): decides, for example, what the E2B surface calls paused. */
  standbyReason: StandbyReason | null;
  onTimeout: OnTimeout;
  /** 0 = never pause on idle. */
  idleTimeoutMs: number;
  /** 0 = never hibernate a paused sandbox on its own. */
  hibernateAfterMs: number;
  forkedFrom: string | null;
  /** A member of a warm pool: booted ahead of any request, frozen, hidden from lists until claimed. */
  pooled: boolean;
  createdVia: CreatedVia;
  /** Host path of the (pinned) agent binary the sandbox runs; null for sandboxes from before pinning. */
  agent: string | null;
  /** Its network; null when it has none (networking off, or a sandbox from before networking). */
  network: SandboxNetworkRecord | null;
}

/** What a sandbox keeps of its network across standby and restarts. */
export interface SandboxNetworkRecord {
  /** Its IPv4 address in the daemon's range; null until one is assigned (a pool member, a clone being made). */
  address: string | null;
  policy: ResolvedNetworkPolicy;
  /** Secret name -> the placeholder the sandbox sees in that variable (the value never leaves the daemon). */
  placeholders: Record<string, string>;
  /** Headers the egress proxy sets on requests to a host pattern (E2B's `rules`); kept like env vars. */
  headerRules?: Record<string, Record<string, string>>;
  /** The preview access token (random per sandbox; rotated to revoke) and whether its ports are public. */
  previewToken?: string;
  previewPublic?: boolean;
  /** Bytes sent and received by its earlier incarnations (a namespace's counters start at 0 at each start). */
  sentBytes?: number;
  receivedBytes?: number;
}

export interface ListFilter {
  state?: SandboxState;
  metadata?: Record<string, string>;
  limit: number;
  /** Exclusive: rows strictly after this (createdAt, id) in newest-first order. */
  after?: { createdAt: number; id: string };
}

type Row = {
  id: string;
  template: string;
  runtime: string;
  state: string;
  state_reason: string | null;
  cpu: number;
  memory_mib: number;
  disk_mib: number;
  env: string;
  metadata: string;
  timeout_ms: number;
  created_at: number;
  expires_at: number | null;
  standby_since: number | null;
  standby_reason: string | null;
  on_timeout: string;
  idle_timeout_ms: number;
  hibernate_after_ms: number;
  forked_from: string | null;
  pooled: number;
  created_via: string;
  agent: string | null;
  network: string | null;
};

/**
 * Durable sandbox state: the source of truth a restarted daemon reconciles from. A repository over the shared
 * Database (its table comes from migrations 1-5); whoever opened the Database closes it.
 */
export class SandboxStore {
  constructor(private readonly db: Database) {}

  private stmt(sql: string): Statement {
    return this.db.statement(sql);
  }

  /**
   * A hibernated sandbox lives on after a power cut (its image and disk are synced), so the record saying so is
   * synced too; other states die with the host anyway and are written without waiting for the disk.
   */
  private write(state: SandboxState, run: () => unknown): void {
    if (state === "hibernated") this.db.durable(run);
    else run();
  }

  insert(r: SandboxRecord): void {
    this.stmt(
        `INSERT INTO sandboxes (id, template, runtime, state, state_reason, cpu, memory_mib, disk_mib, env, metadata, timeout_ms, created_at, expires_at, standby_since, standby_reason,
                                on_timeout, idle_timeout_ms, hibernate_after_ms, forked_from, pooled, created_via, agent, network)
         VALUES (@id, @template, @runtime, @state, @stateReason, @cpu, @memoryMiB, @diskMiB, @env, @metadata, @timeoutMs, @createdAt, @expiresAt, @standbySince, @standbyReason,
                 @onTimeout, @idleTimeoutMs, @hibernateAfterMs, @forkedFrom, @pooled, @createdVia, @agent, @network)`,
      )
      .run({ ...r, env: JSON.stringify(r.env), metadata: JSON.stringify(r.metadata), pooled: r.pooled ? 1 : 0, network: r.network ? JSON.stringify(r.network) : null });
  }

  /** A warm pool's member becomes the requester's sandbox: its settings, a fresh lifetime, visible from now. */
  claim(r: SandboxRecord): void {
    this.stmt(
      `UPDATE sandboxes SET state = @state, state_reason = NULL, env = @env, metadata = @metadata, timeout_ms = @timeoutMs, created_at = @createdAt,
              expires_at = @expiresAt, standby_since = NULL, standby_reason = NULL, on_timeout = @onTimeout, idle_timeout_ms = @idleTimeoutMs,
              hibernate_after_ms = @hibernateAfterMs, pooled = 0, created_via = @createdVia, network = @network
       WHERE id = @id AND pooled = 1`,
    ).run({ ...r, env: JSON.stringify(r.env), metadata: JSON.stringify(r.metadata), network: r.network ? JSON.stringify(r.network) : null });
  }

  get(id: string): SandboxRecord | null {
    const row = this.stmt("SELECT * FROM sandboxes WHERE id = ?").get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  setState(id: string, state: SandboxState, reason: string | null = null): void {
    this.write(state, () => this.stmt("UPDATE sandboxes SET state = ?, state_reason = ? WHERE id = ?").run(state, reason, id));
  }

  /**
   * Enters standby (`standby` given, `since` = when it began) or leaves it (null), with the lifetime's new
   * end. `note` is the free-text state reason.
   */
  setStandby(
    id: string,
    state: SandboxState,
    standby: { since: number; reason: StandbyReason } | null,
    expiresAt: number | null,
    note: string | null = null,
  ): void {
    this.write(state, () =>
      this.stmt("UPDATE sandboxes SET state = ?, state_reason = ?, standby_since = ?, standby_reason = ?, expires_at = ? WHERE id = ?").run(
        state,
        note,
        standby?.since ?? null,
        standby?.reason ?? null,
        expiresAt,
        id,
      ),
    );
  }

  setPolicy(id: string, policy: { onTimeout: OnTimeout; idleTimeoutMs: number; hibernateAfterMs: number }): void {
    this.stmt("UPDATE sandboxes SET on_timeout = ?, idle_timeout_ms = ?, hibernate_after_ms = ? WHERE id = ?").run(
      policy.onTimeout,
      policy.idleTimeoutMs,
      policy.hibernateAfterMs,
      id,
    );
  }

  setNetwork(id: string, network: SandboxNetworkRecord | null): void {
    this.stmt("UPDATE sandboxes SET network = ? WHERE id = ?").run(network ? JSON.stringify(network) : null, id);
  }

  /** Sandboxes with a network that may use it (not stopped or failed). */
  withNetwork(): SandboxRecord[] {
    return (this.stmt("SELECT * FROM sandboxes WHERE network IS NOT NULL AND state NOT IN ('stopped', 'failed') AND pooled = 0").all() as Row[]).map(fromRow);
  }

  /** Addresses held by sandboxes of any state: a stopped or failed one keeps its address until deleted. */
  networkAddresses(): string[] {
    const rows = this.stmt("SELECT json_extract(network, '$.address') AS address FROM sandboxes WHERE network IS NOT NULL").all() as { address: string | null }[];
    return rows.map((r) => r.address).filter((a): a is string => typeof a === "string");
  }

  setExpiry(id: string, timeoutMs: number, expiresAt: number | null): void {
    this.stmt("UPDATE sandboxes SET timeout_ms = ?, expires_at = ? WHERE id = ?").run(timeoutMs, expiresAt, id);
  }

  delete(id: string): void {
    this.stmt("DELETE FROM sandboxes WHERE id = ?").run(id);
  }

  list(filter: ListFilter): SandboxRecord[] {
    // Warm-pool members belong to nobody yet.
    const where: string[] = ["pooled = 0"];
    const params: unknown[] = [];
    if (filter.state) {
      where.push("state = ?");
      params.push(filter.state);
    }
    for (const [key, value] of Object.entries(filter.metadata ?? {})) {
      where.push("EXISTS (SELECT 1 FROM json_each(sandboxes.metadata) WHERE json_each.key = ? AND json_each.value = ?)");
      params.push(key, value);
    }
    if (filter.after) {
      where.push("(created_at < ? OR (created_at = ? AND id < ?))");
      params.push(filter.after.createdAt, filter.after.createdAt, filter.after.id);
    }
    const sql = `SELECT * FROM sandboxes WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`;
    return (this.stmt(sql).all(...params, filter.limit) as Row[]).map(fromRow);
  }

  /** Sandboxes that should have a live runtime: what a restarted daemon must reattach or recover. */
  live(): SandboxRecord[] {
    return (this.stmt("SELECT * FROM sandboxes WHERE state IN ('creating', 'running', 'paused', 'hibernating', 'hibernated', 'resuming', 'stopping')").all() as Row[]).map(fromRow);
  }

  /** Sandboxes by state, warm-pool members apart (they hold memory but belong to nobody). */
  countByState(): Record<string, number> {
    const rows = this.stmt("SELECT state, COUNT(*) AS n FROM sandboxes WHERE pooled = 0 GROUP BY state").all() as { state: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** Warm-pool members, oldest first, in any state (a restart may find one failed). */
  pooled(): SandboxRecord[] {
    return (this.stmt("SELECT * FROM sandboxes WHERE pooled = 1 ORDER BY created_at, id").all() as Row[]).map(fromRow);
  }

}

function fromRow(row: Row): SandboxRecord {
  return {
    id: row.id,
    template: row.template,
    runtime: row.runtime as Runtime,
    state: row.state as SandboxState,
    stateReason: row.state_reason,
    cpu: row.cpu,
    memoryMiB: row.memory_mib,
    diskMiB: row.disk_mib,
    env: JSON.parse(row.env) as Env,
    metadata: JSON.parse(row.metadata) as Metadata,
    timeoutMs: row.timeout_ms,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    standbySince: row.standby_since,
    standbyReason: row.standby_reason as StandbyReason | null,
    onTimeout: row.on_timeout as OnTimeout,
    idleTimeoutMs: row.idle_timeout_ms,
    hibernateAfterMs: row.hibernate_after_ms,
    forkedFrom: row.forked_from,
    pooled: row.pooled === 1,
    createdVia: row.created_via as CreatedVia,
    agent: row.agent,
    network: row.network ? (JSON.parse(row.network) as SandboxNetworkRecord) : null,
  };
}
