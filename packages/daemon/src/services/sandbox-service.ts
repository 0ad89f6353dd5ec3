import { existsSync, statfsSync } from "node:fs";
import { CreateSandboxRequestSchema } from "@stasis/protocol";
import type { CreateSandboxParams, ListSandboxesQuery, NetworkPolicy, Runtime, Sandbox, SandboxList, StandbyPolicy } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import type { SandboxNetworkRecord } from "../store/sandbox-store.js";
import { Booter } from "./lifecycle/boot.js";
import { Forker } from "./lifecycle/fork.js";
import { FailedSandboxFiles } from "./failed-files.js";
import { reconcile } from "./lifecycle/reconcile.js";
import { forEachLimited, isAwakeOrAsleep, listCursor, RESIDENT_STATES, toSandbox, wokenExpiry } from "./lifecycle/records.js";
import { SandboxCore, type LiveSandbox, type SandboxServiceDeps } from "./lifecycle/sandbox-core.js";
import { SandboxNetworking } from "./lifecycle/sandbox-networking.js";
import { Standby } from "./lifecycle/standby.js";
import { StandbySweeper } from "./lifecycle/standby-sweeper.js";
import { TemplateSnapshots } from "./lifecycle/template-snapshots.js";
import { WarmPools } from "./lifecycle/warm-pools.js";
import { Creator, type CreateExtras } from "./lifecycle/creator.js";
import { traced } from "../observability/tracing.js";

/** What a create without a template gets (the protocol's default). */
const DEFAULT_TEMPLATE = CreateSandboxRequestSchema.shape.template.parse(undefined);

export type { LiveSandbox, SandboxServiceDeps } from "./lifecycle/sandbox-core.js";
export { listCursor, wokenExpiry } from "./lifecycle/records.js";

export interface SandboxUsage {
  cpuCount: number;
  /** Total CPU time since the sandbox (or its current incarnation, after a restore) started. */
  cpuUsageUsec: number | null;
  memoryBytes: number | null;
  memoryLimitBytes: number;
  diskUsedBytes: number | null;
  diskTotalBytes: number;
  /** Bytes the sandbox sent and received on its network over its life; null without a network. */
  networkSentBytes: number | null;
  networkReceivedBytes: number | null;
}

/**
 * The sandbox lifecycle as the API sees it: create, standby (pause in RAM, hibernate to disk, wake), fork,
 * reattach after a restart, expire, delete. Each part lives in lifecycle/ over one shared core (records,
 * live channels, per-sandbox locks, activity); this class composes them and is what routes call.
 */
export class SandboxService {
  private readonly core: SandboxCore;
  private readonly booter: Booter;
  private readonly standby: Standby;
  private readonly pools: WarmPools;
  private readonly forker: Forker;
  private readonly snapshots: TemplateSnapshots;
  private readonly sweeper: StandbySweeper;
  private readonly networking: SandboxNetworking;
  private readonly creator: Creator;

  constructor(deps: SandboxServiceDeps) {
    this.core = new SandboxCore(deps);
    this.booter = new Booter(this.core);
    this.standby = new Standby(this.core, this.booter);
    this.pools = new WarmPools(this.core, this.booter, this.standby);
    this.forker = new Forker(this.core, this.booter, this.standby);
    this.snapshots = new TemplateSnapshots(this.core, this.booter, this.standby);
    this.sweeper = new StandbySweeper(this.core, this.standby, this.pools);
    this.networking = new SandboxNetworking(this.core);
    this.creator = new Creator(this.core, this.booter, this.pools, (id) => this.get(id), (id) => this.delete(id));
  }

  /** Probes runtimes, reconciles sandboxes left by a previous daemon, starts the standby and expiry sweeper. */
  async start(): Promise<void> {
    await this.core.probeRuntimes();
    this.core.deps.log.info({ agent: this.core.agent.path }, "guest agent pinned");
    await reconcile(this.core);
    this.core.removeUnusedAgents();
    this.sweeper.start();
    this.core.updateGauges();
    this.prepareShiftedRootfs();
  }

  /**
   * A runtime whose root is a shifted uid (crun's user namespace) needs a copy of the template with every
   * owner shifted, made once per template version (~5-15 s for `base`). Started here for the default
   * template, in the background, so that the first such create does not wait for it; a create meanwhile
   * shares the copy.
   */
  private prepareShiftedRootfs(): void {
    const { templates, drivers, log } = this.core.deps;
    for (const runtime of drivers.keys()) {
      const owner = this.core.rootOwnerFor(runtime);
      if (owner === 0 || !this.core.probeOf(runtime)?.available) continue;
      const started = performance.now();
      const fields = { template: DEFAULT_TEMPLATE, runtime };
      templates.rootfs(DEFAULT_TEMPLATE, owner, (line) => log.info(fields, line)).then(
        () => log.debug({ ...fields, ms: Math.round(performance.now() - started) }, "root of the default template ready"),
        (err: Error) => log.info({ ...fields, err: err.message }, "no root of the default template made ahead (the first create makes it)"),
      );
    }
  }

  /** Stops the sweeper and closes channels. Sandboxes keep running and are reattached on the next start. */
  stop(): void {
    this.sweeper.stop();
    for (const id of [...this.core.live.keys()]) this.core.detach(id, "daemon stopping");
  }

  /**
   * Graceful stop: hibernates every running or paused sandbox whose runtime can checkpoint, a few at a
   * time, reporting progress; the others keep running and are reattached on the next start.
   */
  async shutdown(): Promise<void> {
    this.sweeper.stop();
    await this.pools.discardAll();
    const targets = this.core.deps.store.live().filter((r) => (r.state === "running" || r.state === "paused") && this.standby.canHibernate(r));
    const { log, config } = this.core.deps;
    if (targets.length > 0) {
      const started = performance.now();
      let done = 0;
      let failed = 0;
      log.info({ sandboxes: targets.length, parallelism: config.hibernateParallelism }, "hibernating sandboxes before stopping");
      await forEachLimited(targets, config.hibernateParallelism, async (record) => {
        try {
          await this.hibernate(record.id, { leaveNetwork: true });
        } catch (err) {
          failed++;
          log.error({ sandbox: record.id, err: (err as Error).message }, "could not hibernate; it is left running");
        }
        done++;
        log.info({ sandbox: record.id, progress: `${done}/${targets.length}` }, "hibernated before stopping");
      });
      log.info({ sandboxes: targets.length, failed, ms: Math.round(performance.now() - started) }, "hibernation before stop finished");
    }
    this.stop();
  }

  /** On a stop without hibernation: warm-pool members are discarded (rebuilt on the next start). */
  discardPools(): Promise<void> {
    return this.pools.discardAll();
  }

  runtimes(): { name: Runtime; available: boolean; reason: string | null }[] {
    return [...this.core.deps.drivers.keys()].map((name) => {
      const p = this.core.probeOf(name);
      return { name, available: p?.available ?? false, reason: p?.reason ?? "not probed" };
    });
  }

  /**
   * `headerRules`: headers the egress proxy sets per host pattern (the E2B surface's `rules`). `abandoned`:
   * aborts when the client goes away; a sandbox created for nobody is removed, not left running.
   */
  create(params: CreateSandboxParams, extras: CreateExtras = {}): Promise<Sandbox> {
    return this.creator.create(params, extras);
  }

  get(id: string): Sandbox {
    return toSandbox(this.core.record(id));
  }

  list(query: ListSandboxesQuery & { limit: number }): SandboxList {
    let after: { createdAt: number; id: string } | undefined;
    if (query.cursor) {
      const [at, id] = Buffer.from(query.cursor, "base64url").toString().split(":");
      if (!at || !id || !Number.isInteger(Number(at))) throw new ApiError("invalid_request", "malformed cursor");
      after = { createdAt: Number(at), id };
    }
    const metadata: Record<string, string> = {};
    if (query.metadata) {
      for (const [k, v] of new URLSearchParams(query.metadata)) metadata[k] = v;
    }
    const rows = this.core.deps.store.list({ state: query.state, metadata, limit: query.limit + 1, after });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    const nextCursor = rows.length > query.limit && last ? listCursor(toSandbox(last)) : null;
    return { sandboxes: page.map(toSandbox), nextCursor };
  }

  /** When the lifetime would end if the sandbox woke now (standby does not count); null without a lifetime. */
  expiryIfWoken(id: string): number | null {
    const record = this.core.record(id);
    return record.standbySince === null ? record.expiresAt : wokenExpiry(record, Date.now());
  }

  /** What the sandbox uses now, read from its runtime and its disk; a figure that cannot be read is null. */
  usage(id: string): SandboxUsage {
    const record = this.core.record(id);
    let diskUsedBytes: number | null = null;
    try {
      const fs = statfsSync(this.core.deps.filesystem.paths(id).diskMount);
      diskUsedBytes = (fs.blocks - fs.bfree) * fs.bsize;
    } catch {
      // Not mounted (stopped, or after a reboot until the next wake).
    }
    const resident = (RESIDENT_STATES as readonly string[]).includes(record.state);
    const used = resident ? this.core.deps.drivers.get(record.runtime)?.usage(this.core.ref(id)) : undefined;
    return {
      cpuCount: record.cpu,
      cpuUsageUsec: used?.cpuUsageUsec ?? null,
      memoryBytes: resident ? (used?.memoryBytes ?? null) : 0,
      memoryLimitBytes: record.memoryMiB * 1024 * 1024,
      diskUsedBytes,
      diskTotalBytes: record.diskMiB * 1024 * 1024,
      ...this.networking.bytesOf(record),
    };
  }

  /** The sandbox's network record (address, policy, preview token), or a clear error without one. */
  networkOf(id: string): SandboxNetworkRecord {
    return this.networking.recordOf(id);
  }

  /** Changes fields of the sandbox's network record (under its lock, so a start never reads it half-done). */
  updateNetworkRecord(id: string, change: (network: SandboxNetworkRecord) => SandboxNetworkRecord): Promise<SandboxNetworkRecord> {
    return this.networking.updateRecord(id, change);
  }

  /** Network bytes of every sandbox with a network (for /metrics). */
  networkTotals(): { id: string; sent: number; received: number }[] {
    return this.networking.totals();
  }

  /** New lifetime, counted from now (or, in standby, from the moment the sandbox wakes). */
  setTimeout(id: string, timeoutMs: number): Sandbox {
    const record = this.core.record(id);
    if (!isAwakeOrAsleep(record.state)) throw new ApiError("sandbox_not_running", `sandbox ${id} is ${record.state}`);
    this.core.touch(id);
    this.core.deps.store.setExpiry(id, timeoutMs, (record.standbySince ?? Date.now()) + timeoutMs);
    return this.get(id);
  }

  setStandbyPolicy(id: string, policy: StandbyPolicy): Sandbox {
    const record = this.core.record(id);
    this.core.deps.store.setPolicy(id, {
      onTimeout: policy.onTimeout ?? record.onTimeout,
      idleTimeoutMs: policy.idleTimeoutMs ?? record.idleTimeoutMs,
      hibernateAfterMs: policy.hibernateAfterMs ?? record.hibernateAfterMs,
    });
    this.core.touch(id);
    return this.get(id);
  }

  /** A new network policy (fields left out keep their value); new connections follow it at once. */
  async setNetwork(id: string, policy: NetworkPolicy, headerRules?: Record<string, Record<string, string>>): Promise<Sandbox> {
    await this.networking.setPolicy(id, policy, headerRules);
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    const record = this.core.record(id);
    if (record.state === "creating") {
      throw new ApiError("sandbox_not_running", `sandbox ${id} is still being created; delete it once it is running`);
    }
    // After any transition in flight (a hibernation is not torn down halfway).
    await this.core.exclusive(id, async () => {
      const current = this.core.deps.store.get(id);
      if (!current) return;
      this.core.deps.store.setState(id, "stopping");
      await this.core.teardown(current);
      this.core.deps.store.delete(id);
      this.core.forget(id);
      this.core.log.info({ sandbox: id }, "sandbox deleted");
    });
    this.core.updateGauges();
  }

  /**
   * The live sandbox for a request that needs its agent. A sandbox in standby (paused or hibernated, or
   * on its way there) is woken first, so clients never need to know it slept; other states are refused.
   */
  async acquire(id: string): Promise<LiveSandbox> {
    const record = this.core.record(id);
    this.core.touch(id);
    const live = this.core.live.get(id);
    // Fast path: running, and no transition (such as an automatic pause) queued behind this request.
    if (record.state === "running" && live && !this.core.isLocked(id)) return live;
    if (isAwakeOrAsleep(record.state) || record.state === "hibernating" || record.state === "resuming") {
      await this.core.exclusive(id, () => this.standby.wake(id));
    }
    const now = this.core.record(id);
    const woken = this.core.live.get(id);
    if (now.state !== "running" || !woken) {
      throw new ApiError("sandbox_not_running", `sandbox ${id} is ${now.state}${now.stateReason ? ` (${now.stateReason})` : ""}`);
    }
    this.core.touch(id);
    return woken;
  }

  /**
   * A reader of a failed sandbox's kept files (read-only, from the host), or null when the sandbox is not
   * failed. Only once its runtime is known dead: nothing inside may change a path while it is resolved.
   */
  async failedFiles(id: string): Promise<FailedSandboxFiles | null> {
    const record = this.core.record(id);
    if (record.state !== "failed") return null;
    const { drivers, filesystem, templates } = this.core.deps;
    const driver = drivers.get(record.runtime);
    if (driver && (await driver.observe(this.core.ref(id)).catch(() => "running")) !== "stopped") {
      throw new ApiError("sandbox_not_running", `sandbox ${id} is failed (${record.stateReason ?? "no reason"}) but its runtime still runs; delete it`);
    }
    if (!existsSync(filesystem.paths(id).diskImage)) throw new ApiError("sandbox_not_running", `sandbox ${id} is failed and its files are gone`);
    const owner = this.core.ownerOf(record);
    // After a host reboot its disk is no longer mounted.
    if (!(await filesystem.isMounted(id))) await filesystem.mount(id, await templates.rootfs(record.template, owner), owner);
    return new FailedSandboxFiles(filesystem.paths(id).rootfs, owner);
  }

  /**
   * Marks the sandbox busy (an open stream or a running foreground command) until the returned release.
   * A foreground command gives its deadline (Infinity: none): a hibernation lets it finish first.
   */
  hold(id: string, command?: { deadline: number }): () => void {
    const a = this.core.touch(id);
    a.holds++;
    if (command) a.commands.add(command);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      a.holds--;
      if (command) a.commands.delete(command);
      a.lastAt = Date.now();
    };
  }

  /** Freezes a running sandbox in RAM. Its lifetime clock stops until it wakes. */
  pause(id: string): Promise<Sandbox> {
    return this.core.exclusive(id, async () => {
      await this.standby.freeze(id, "requested");
      return this.get(id);
    });
  }

  /** Checkpoints a running or paused sandbox to disk: it then holds no CPU and no memory. */
  hibernate(id: string, options: { leaveNetwork?: boolean } = {}): Promise<Sandbox> {
    return this.core.exclusive(id, async () => {
      await this.standby.checkpoint(id, "requested", null, options);
      return this.get(id);
    });
  }

  /** Wakes a paused or hibernated sandbox; concurrent callers share one wake. */
  async resume(id: string): Promise<Sandbox> {
    this.core.record(id);
    this.core.touch(id);
    await this.core.exclusive(id, () => this.standby.wake(id));
    return this.get(id);
  }

  /** `count` independent copies of the sandbox's memory, processes and files; the source carries on. */
  fork(id: string, count: number): Promise<Sandbox[]> {
    return traced("sandbox.fork", { "stasis.sandbox.id": id, "stasis.fork.count": count }, () => this.core.exclusive(id, () => this.forker.fork(id, count)));
  }

  snapshotTemplate(ref: string, signal: AbortSignal): Promise<{ memoryBytes: number; diskBytes: number; runtime: string }> {
    return this.snapshots.take(ref, signal);
  }

  /** Whether this daemon can take template snapshots (a usable runtime with checkpoint). */
  canSnapshot(): boolean {
    return this.snapshots.canSnapshot();
  }

  /** What takes and restores snapshots here (e.g. runsc's version and platform). */
  snapshotRuntime(): string {
    return this.booter.snapshotFormat() ?? "none";
  }

  holdForDelete(refs: string[]): () => void {
    return this.snapshots.holdForDelete(refs);
  }

  usersOf(refs: string[]): { id: string; state: string; pooled: boolean }[] {
    return this.snapshots.usersOf(refs);
  }

  discardPoolsOf(refs: string[]): Promise<void> {
    return this.pools.discardOf(refs);
  }

  commandDefaults(ref: string): { cwd: string | null; user: string | null } {
    return this.snapshots.commandDefaults(ref);
  }

  updateGauges(): void {
    this.core.updateGauges();
  }

  warmPools(): { template: string; size: number; ready: number; booting: number }[] {
    return this.pools.status();
  }

  info(): { total: number; running: number; max: number } {
    const counts = this.core.deps.store.countByState();
    return {
      total: Object.values(counts).reduce((a, b) => a + b, 0),
      running: counts.running ?? 0,
      max: this.core.deps.config.maxSandboxes,
    };
  }
}
