import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, statfsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import {
  CreateSandboxRequestSchema,
  SandboxStateSchema,
  type CreateSandboxParams,
  type ListSandboxesQuery,
  type Runtime,
  type Sandbox,
  type SandboxList,
  type StandbyPolicy,
  type StandbyReason,
} from "@stasis/protocol";
import { AgentClient } from "../agent-client/agent-client.js";
import type { DaemonConfig } from "../config/config.js";
import { ApiError } from "../errors/api-error.js";
import type { Metrics } from "../observability/metrics.js";
import { sandboxCpuUsageUsec, sandboxMemoryBytes } from "../runtime/cgroups.js";
import type { LaunchedSandbox, RuntimeDriver, RuntimeProbe, SandboxLaunchSpec } from "../runtime/driver.js";
import { FifoPair } from "../runtime/fifo-channel.js";
import type { Freezer } from "../runtime/freezer.js";
import { cgroupPathOf } from "../runtime/oci-spec.js";
import type { SandboxFilesystem } from "../storage/sandbox-filesystem.js";
import { Limiter } from "./limiter.js";
import type { SandboxRecord, SandboxStore } from "../store/sandbox-store.js";
import { TemplateNotFoundError, type ResolvedTemplate, type TemplateStore } from "../templates/template-store.js";

const AGENT_READY_TIMEOUT_MS = 15_000;
const SWEEP_MS = 1_000;
/** States that hold a sandbox's memory (or are on their way to or from it): they count against capacity. */
const RESIDENT_STATES = ["creating", "running", "paused", "hibernating", "resuming"] as const;

/** A sandbox whose runtime is up and whose agent channel is open. */
export interface LiveSandbox {
  record: SandboxRecord;
  agent: AgentClient;
}

export interface SandboxServiceDeps {
  config: DaemonConfig;
  store: SandboxStore;
  drivers: Map<Runtime, RuntimeDriver>;
  filesystem: SandboxFilesystem;
  templates: TemplateStore;
  freezer: Freezer;
  metrics: Metrics;
  log: Logger;
}

export interface SandboxUsage {
  cpuCount: number;
  /** Total CPU time since the sandbox (or its current incarnation, after a restore) started. */
  cpuUsageUsec: number | null;
  memoryBytes: number | null;
  memoryLimitBytes: number;
  diskUsedBytes: number | null;
  diskTotalBytes: number;
}

/** What a sandbox is made of: its template (resolved to a version) and the resources and env it gets. */
interface SandboxShape {
  template: ResolvedTemplate;
  runtime: Runtime;
  cpu: number;
  memoryMiB: number;
  diskMiB: number;
  env: Record<string, string>;
}

/** What keeps a sandbox awake: recent API calls and open streams or foreground commands. */
interface Activity {
  lastAt: number;
  holds: number;
}

/**
 * Sandbox lifecycle: create, standby (pause in RAM, hibernate to disk, wake), fork, reattach after a
 * restart, expire, delete. The store holds the requested and observed state; this service holds the live
 * agent channels. Every transition of one sandbox runs under that sandbox's lock, so a request that
 * arrives mid-hibernation waits for it and then wakes the sandbox.
 */
export class SandboxService {
  private readonly live = new Map<string, LiveSandbox>();
  private readonly probes = new Map<Runtime, RuntimeProbe>();
  /** The tail of each sandbox's chain of lifecycle transitions. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly activity = new Map<string, Activity>();
  /** Teardowns in flight: delete, expiry and death can race for the same sandbox. */
  private readonly tearingDown = new Map<string, Promise<void>>();
  private sweeper: NodeJS.Timeout | null = null;
  private readonly boots: Limiter;
  private sweeping = false;
  /** Warm-pool members being claimed, so two creates never take the same one. */
  private readonly claiming = new Set<string>();
  private filling = false;
  /** Set on a stop: no more refills. */
  private poolsClosed = false;
  /** Sandboxes booted to take a template's snapshot: hidden like pool members, but no pool's to discard. */
  private readonly snapshotting = new Set<string>();
  /** Template versions a delete is removing (see holdForDelete). */
  private readonly deletingTemplates = new Set<string>();
  /** Templates whose snapshot another runsc took, warned about once. */
  private readonly staleSnapshotsLogged = new Set<string>();
  private readonly defaultsCache = new Map<string, { cwd: string | null; user: string | null }>();

  constructor(private readonly deps: SandboxServiceDeps) {
    this.boots = new Limiter(deps.config.createParallelism);
  }

  /** Probes runtimes, reconciles sandboxes left by a previous daemon, starts the standby and expiry sweeper. */
  async start(): Promise<void> {
    for (const [name, driver] of this.deps.drivers) {
      const probe = await driver.probe();
      this.probes.set(name, probe);
      this.deps.log.info({ runtime: name, ...probe }, probe.available ? "runtime available" : "runtime unavailable");
    }
    await this.reconcile();
    this.sweeper = setInterval(() => void this.sweep(), SWEEP_MS);
    this.sweeper.unref();
    this.updateGauges();
  }

  /** Stops the sweeper and closes channels. Sandboxes keep running and are reattached on the next start. */
  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const live of this.live.values()) {
      live.agent.removeAllListeners("closed");
      live.agent.close("daemon stopping");
    }
    this.live.clear();
  }

  /**
   * Graceful stop: hibernates every running or paused sandbox whose runtime can checkpoint, a few at a
   * time, reporting progress; the others keep running and are reattached on the next start.
   */
  async shutdown(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    await this.discardPools();
    const targets = this.deps.store
      .live()
      .filter((r) => (r.state === "running" || r.state === "paused") && this.deps.drivers.get(r.runtime)?.checkpoint);
    if (targets.length > 0) {
      const started = performance.now();
      let done = 0;
      let failed = 0;
      this.deps.log.info({ sandboxes: targets.length, parallelism: this.deps.config.hibernateParallelism }, "hibernating sandboxes before stopping");
      await forEachLimited(targets, this.deps.config.hibernateParallelism, async (record) => {
        try {
          await this.hibernate(record.id);
        } catch (err) {
          failed++;
          this.deps.log.error({ sandbox: record.id, err: (err as Error).message }, "could not hibernate; it is left running");
        }
        done++;
        this.deps.log.info({ sandbox: record.id, progress: `${done}/${targets.length}` }, "hibernated before stopping");
      });
      this.deps.log.info({ sandboxes: targets.length, failed, ms: Math.round(performance.now() - started) }, "hibernation before stop finished");
    }
    this.stop();
  }

  runtimes(): { name: Runtime; available: boolean; reason: string | null }[] {
    return [...this.deps.drivers.keys()].map((name) => {
      const p = this.probes.get(name);
      return { name, available: p?.available ?? false, reason: p?.reason ?? "not probed" };
    });
  }

  async create(params: CreateSandboxParams): Promise<Sandbox> {
    const runtime = params.runtime ?? this.deps.config.defaultRuntime;
    const driver = this.usableDriver(runtime);
    const shape = this.shapeOf(params, this.resolveTemplate(params.template), runtime);
    this.checkCapacity(1);
    const started = performance.now();
    const warm = await this.claimFromPool(shape, params);
    if (warm) {
      this.deps.metrics.sandboxCreate.observe({ runtime, via: "warm_pool" }, (performance.now() - started) / 1000);
      this.deps.log.info({ sandbox: warm.id, ms: Math.round((performance.now() - started) * 10) / 10 }, "sandbox created from the warm pool");
      return warm;
    }
    // Checked in the same tick as the insert: a delete that began since the template was resolved either
    // sees this record (and refuses) or is seen here.
    this.refuseIfDeleting(shape.template.ref);
    const record = this.newRecord(params, shape, Date.now());
    const log = this.deps.log.child({ sandbox: record.id, runtime });
    this.deps.store.insert(record);
    try {
      await this.materialize(record, shape, driver, log);
      this.deps.metrics.sandboxCreate.observe({ runtime, via: record.createdVia }, (performance.now() - started) / 1000);
      log.info({ ms: Math.round(performance.now() - started), via: record.createdVia, template: record.template }, "sandbox created");
      return this.get(record.id);
    } catch (err) {
      this.deps.metrics.sandboxFailures.inc({ runtime, phase: "create" });
      log.error({ err }, "sandbox create failed");
      await this.teardown(record).catch((e: Error) => log.error({ err: e }, "cleanup after failed create failed"));
      this.deps.store.delete(record.id);
      throw asApiError(err, "sandbox failed to start");
    } finally {
      this.updateGauges();
    }
  }

  private resolveTemplate(ref: string): ResolvedTemplate {
    let template: ResolvedTemplate;
    try {
      template = this.deps.templates.resolve(ref);
    } catch (err) {
      if (err instanceof TemplateNotFoundError) throw new ApiError("template_not_found", err.message);
      throw err;
    }
    this.refuseIfDeleting(template.ref);
    return template;
  }

  private refuseIfDeleting(ref: string): void {
    if (this.deletingTemplates.has(ref)) throw new ApiError("template_not_found", `template ${ref} is being deleted`);
  }

  /**
   * Marks template versions as being deleted until `release` is called: creates and pool claims refuse
   * them and pools stop refilling them, so the caller's check for users stays true until it removes them.
   */
  holdForDelete(refs: string[]): () => void {
    const mine = refs.filter((r) => !this.deletingTemplates.has(r));
    for (const r of mine) this.deletingTemplates.add(r);
    return () => {
      for (const r of mine) {
        this.deletingTemplates.delete(r);
        this.defaultsCache.delete(r);
      }
    };
  }

  /** Resources: the request's, else the template's. A snapshot's disk is part of the snapshot. */
  private shapeOf(params: Partial<Pick<CreateSandboxParams, "cpu" | "memoryMiB" | "diskMiB" | "env">>, template: ResolvedTemplate, runtime: Runtime): SandboxShape {
    const diskMiB = params.diskMiB ?? template.resources.diskMiB;
    if (template.snapshot && diskMiB !== template.resources.diskMiB && runtime === "gvisor") {
      throw new ApiError("invalid_request", `template ${template.ref} is a snapshot whose disk is ${template.resources.diskMiB} MiB; a create cannot change it (rebuild the template with another diskMiB)`);
    }
    return {
      template,
      runtime,
      cpu: params.cpu ?? template.resources.cpu,
      memoryMiB: params.memoryMiB ?? template.resources.memoryMiB,
      diskMiB,
      env: { ...template.env, ...params.env },
    };
  }

  private newRecord(params: CreateSandboxParams, shape: SandboxShape, now: number, pooled = false): SandboxRecord {
    return {
      id: newSandboxId(),
      template: shape.template.ref,
      runtime: shape.runtime,
      state: "creating",
      stateReason: null,
      cpu: shape.cpu,
      memoryMiB: shape.memoryMiB,
      diskMiB: shape.diskMiB,
      env: shape.env,
      metadata: params.metadata,
      timeoutMs: params.timeoutMs,
      createdAt: now,
      // A pool member has no lifetime until it is claimed.
      expiresAt: pooled ? null : now + params.timeoutMs,
      standbySince: null,
      standbyReason: null,
      onTimeout: params.onTimeout,
      idleTimeoutMs: pooled ? 0 : params.idleTimeoutMs,
      hibernateAfterMs: pooled ? 0 : params.hibernateAfterMs,
      forkedFrom: null,
      pooled,
      createdVia: this.usesSnapshot(shape) ? "snapshot" : "cold",
    };
  }

  private usesSnapshot(shape: SandboxShape): boolean {
    const snap = shape.template.snapshot;
    if (!snap || this.deps.drivers.get(shape.runtime)?.restore === undefined) return false;
    // A checkpoint taken by another runsc (an upgrade) or platform may not restore: boot cold instead.
    if (snap.runtime !== null && snap.runtime !== this.snapshotRuntime()) {
      if (!this.staleSnapshotsLogged.has(shape.template.ref)) {
        this.staleSnapshotsLogged.add(shape.template.ref);
        this.deps.log.warn({ template: shape.template.ref, snapshotBy: snap.runtime, now: this.snapshotRuntime() }, "the template's snapshot was taken by another runsc; its sandboxes boot cold until it is rebuilt");
      }
      return false;
    }
    return true;
  }

  /** What takes and restores snapshots here: runsc's version and platform. */
  snapshotRuntime(): string {
    const d = this.probes.get("gvisor")?.details ?? {};
    return `runsc ${d.version ?? "?"} ${d.platform ?? "?"}`;
  }

  /**
   * Brings an inserted `creating` record up: restored from its template's snapshot (the start command
   * already running), or booted, with the template's start command started and awaited.
   */
  private async materialize(record: SandboxRecord, shape: SandboxShape, driver: RuntimeDriver, log: Logger): Promise<void> {
    const snapshot = shape.template.snapshot;
    if (snapshot && this.usesSnapshot(shape)) {
      this.deps.metrics.createsWaiting.inc();
      await this.boots.run(async () => {
        this.deps.metrics.createsWaiting.dec();
        const owner = this.ownerOf(record);
        const lower = await this.deps.templates.rootfs(record.template, owner, (line) => log.info(line));
        await this.deps.filesystem.createFromImage(record.id, snapshot.disk, lower, owner);
        await this.restoreFrom(record, snapshot.image, "snapshot");
      });
      return;
    }
    const agent = await this.boot(record, driver, log);
    if (shape.template.start) await this.startTemplateCommand(record, agent, shape.template);
  }

  /**
   * Starts the template's start command in the background and waits for its readiness check to pass
   * (or, without one, for the command to stay up a moment). Fails with what the command said if it dies.
   */
  private async startTemplateCommand(record: SandboxRecord, agent: AgentClient, template: ResolvedTemplate, signal?: AbortSignal): Promise<void> {
    if (!template.start) return;
    const user = template.user ?? "root";
    const cwd = template.workdir ? { cwd: template.workdir } : {};
    const { pid } = await agent.request<{ pid: number }>("exec", { cmd: ["/bin/sh", "-c", template.start], env: record.env, user, ...cwd, stdin: false, subscribe: false, window: 0, tag: "start" });
    const exited = async (): Promise<string | null> => {
      const { processes } = await agent.request<{ processes: { pid: number; running?: boolean; exitCode?: number | null; state?: string }[] }>("ps", {});
      const p = processes.find((x) => x.pid === pid);
      if (!p || p.running === false || p.state === "exited") return `the start command \`${template.start}\` exited${p?.exitCode !== undefined && p.exitCode !== null ? ` with code ${p.exitCode}` : ""}`;
      return null;
    };
    const deadline = Date.now() + (template.readyTimeoutMs ?? 60_000);
    if (!template.ready) {
      await new Promise((r) => setTimeout(r, 500));
      const died = await exited();
      if (died) throw new ApiError("sandbox_failed", died);
      return;
    }
    let last = "";
    for (;;) {
      if (signal?.aborted) throw new ApiError("sandbox_failed", "cancelled while waiting for the readiness check");
      // Each try gets at most 10 s, and never more than what is left of readyTimeoutMs.
      const result = await execToExit(agent, { cmd: ["/bin/sh", "-c", template.ready], env: record.env, user, ...cwd }, Math.max(1_000, Math.min(10_000, deadline - Date.now())));
      if (result.code === 0) return;
      last = result.output.trim().slice(-500);
      const died = await exited();
      if (died) throw new ApiError("sandbox_failed", `${died} before its readiness check \`${template.ready}\` passed${last ? `; the check said: ${last}` : ""}`);
      if (Date.now() > deadline) {
        throw new ApiError("sandbox_failed", `the readiness check \`${template.ready}\` did not pass within ${Math.round((template.readyTimeoutMs ?? 60_000) / 1000)} s${last ? `; it said: ${last}` : ""}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Takes a template version's snapshot: boots it (hidden), runs its start command until ready, lets
   * the agent settle, checkpoints it, and keeps the memory image and the disk as the version's snapshot.
   */
  async snapshotTemplate(ref: string, signal: AbortSignal): Promise<{ memoryBytes: number; diskBytes: number; runtime: string }> {
    const template = this.deps.templates.resolve(ref, { allowBuilding: true });
    const runtime: Runtime = "gvisor";
    const driver = this.usableDriver(runtime);
    if (!driver.checkpoint) throw new ApiError("not_supported_by_runtime", "snapshots need a runtime with checkpoint (gvisor)");
    const shape = this.shapeOf({}, { ...template, snapshot: null }, runtime);
    const record = this.newRecord(CreateSandboxRequestSchema.parse({ template: ref }), shape, Date.now(), true);
    const log = this.deps.log.child({ sandbox: record.id, snapshotOf: ref });
    this.snapshotting.add(record.id);
    this.deps.store.insert(record);
    try {
      const agent = await this.boot(record, driver, log);
      await this.startTemplateCommand(record, agent, template, signal);
      await warmUp(agent);
      if (signal.aborted) throw new ApiError("sandbox_failed", "the build was cancelled");
      await this.exclusive(record.id, () => this.checkpoint(record.id, "requested"));
      const [name = "", version = ""] = ref.split(":");
      const dir = this.deps.templates.snapshotDir(name, Number(version));
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const paths = this.deps.filesystem.paths(record.id);
      await this.deps.filesystem.unmount(record.id);
      renameSync(paths.checkpointDir, join(dir, "image"));
      renameSync(paths.diskImage, join(dir, "disk.img"));
      log.info("template snapshot taken");
      return { memoryBytes: dirBytes(join(dir, "image")), diskBytes: statSync(join(dir, "disk.img")).blocks * 512, runtime: this.snapshotRuntime() };
    } finally {
      await this.teardown(record).catch((err: Error) => log.warn({ err: err.message }, "removing the snapshot's sandbox failed"));
      this.deps.store.delete(record.id);
      this.snapshotting.delete(record.id);
    }
  }

  /** Default cwd and user of commands in sandboxes of `ref` (cached: read on every command). */
  commandDefaults(ref: string): { cwd: string | null; user: string | null } {
    let d = this.defaultsCache.get(ref);
    if (!d) {
      try {
        const t = this.deps.templates.resolve(ref, { allowBuilding: true });
        d = { cwd: t.workdir, user: t.user };
      } catch {
        d = { cwd: null, user: null };
      }
      // A version's settings never change its workdir or user, so entries stay valid; bounded anyway.
      if (this.defaultsCache.size > 1000) this.defaultsCache.clear();
      this.defaultsCache.set(ref, d);
    }
    return d;
  }

  /** Sandboxes (pool members included) made from any of `refs`, which must go before the template can. */
  usersOf(refs: string[]): { id: string; state: string; pooled: boolean }[] {
    const wanted = new Set(refs);
    return this.deps.store
      .live()
      .filter((r) => wanted.has(r.template))
      .map((r) => ({ id: r.id, state: r.state, pooled: r.pooled }));
  }

  /** Discards the warm-pool members of `refs` (before their template is deleted). */
  async discardPoolsOf(refs: string[]): Promise<void> {
    const wanted = new Set(refs);
    await Promise.all(
      this.deps.store
        .pooled()
        .filter((m) => wanted.has(m.template) && !this.snapshotting.has(m.id))
        .map((m) =>
          this.exclusive(m.id, async () => {
            // A create may have claimed it while this waited for the lock: it is the create's now.
            const current = this.deps.store.get(m.id);
            if (current?.pooled) await this.discardMember(current);
          }),
        ),
    );
  }

  /** Boots an inserted `creating` record until its agent answers; the record is then `running`. */
  private async boot(record: SandboxRecord, driver: RuntimeDriver, log: Logger): Promise<AgentClient> {
    // Boots are CPU-bound: a burst queues here (counted as `creating` against capacity) and each boot
    // gets the CPU its agent-ready timeout assumes.
    this.deps.metrics.createsWaiting.inc();
    const { agent, launched } = await this.boots.run(async () => {
      this.deps.metrics.createsWaiting.dec();
      const owner = this.ownerOf(record);
      const lower = await this.deps.templates.rootfs(record.template, owner, (line) => log.info(line));
      const paths = await this.deps.filesystem.create(record.id, lower, record.diskMiB, owner);
      const launched = await driver.launch(this.launchSpec(record, paths.runtimeDir, paths.rootfs));
      return { agent: await this.connect(record, launched, AGENT_READY_TIMEOUT_MS, "start"), launched };
    });
    record.state = "running";
    this.deps.store.setState(record.id, "running");
    this.attach(record, agent, launched.exited);
    return agent;
  }

  /**
   * Takes a frozen member of the template's warm pool whose shape (runtime, cpu, memory, disk) matches
   * the request and makes it the requester's: thaw, its settings, a fresh lifetime. Null when none.
   */
  private async claimFromPool(shape: SandboxShape, params: CreateSandboxParams): Promise<Sandbox | null> {
    if (this.deletingTemplates.has(shape.template.ref) || !this.warmPoolTargets().has(shape.template.ref)) return null;
    const fits = (r: SandboxRecord) => r.state === "paused" && hasShape(r, shape);
    for (const member of this.deps.store.pooled().filter(fits)) {
      if (this.claiming.has(member.id) || this.snapshotting.has(member.id)) continue;
      this.claiming.add(member.id);
      try {
        const claimed = await this.exclusive(member.id, () => this.claim(member.id, params, shape.env));
        if (claimed) return claimed;
      } catch (err) {
        this.deps.log.warn({ sandbox: member.id, err: (err as Error).message }, "a warm-pool member could not be claimed; discarded, trying the next");
        await this.discardMember(member);
      } finally {
        this.claiming.delete(member.id);
      }
    }
    return null;
  }

  /** Under the lock. */
  private async claim(id: string, params: CreateSandboxParams, env: Record<string, string>): Promise<Sandbox | null> {
    const member = this.deps.store.get(id);
    const live = this.live.get(id);
    if (!member?.pooled || member.state !== "paused" || !live || this.deletingTemplates.has(member.template)) return null;
    await this.deps.freezer.thaw(cgroupPathOf(id));
    // A member reattached (frozen) by a restarted daemon has not been heard from yet.
    if (!live.agent.version) await live.agent.waitReady(5_000);
    const now = Date.now();
    const claimed: SandboxRecord = {
      ...member,
      state: "running",
      stateReason: null,
      env,
      metadata: params.metadata,
      timeoutMs: params.timeoutMs,
      createdAt: now,
      expiresAt: now + params.timeoutMs,
      standbySince: null,
      standbyReason: null,
      onTimeout: params.onTimeout,
      idleTimeoutMs: params.idleTimeoutMs,
      hibernateAfterMs: params.hibernateAfterMs,
      pooled: false,
      createdVia: "warm_pool",
    };
    this.deps.store.claim(claimed);
    this.live.set(id, { record: claimed, agent: live.agent });
    this.touch(id);
    // The spare shell follows the sandbox's env (kept as is when the env is the pool's, which is empty).
    live.agent.request("prewarm", { env: claimed.env, user: "root" }).catch(() => {});
    this.updateGauges();
    return toSandbox(claimed);
  }

  /**
   * Keeps each configured warm pool (STASIS_WARM_POOL) at its size: one member booted at a time, frozen
   * once ready, only while the host keeps enough memory free. Dead members are cleared away.
   */
  private async fillPools(): Promise<void> {
    if (this.filling || this.poolsClosed) return;
    let members = this.deps.store.pooled().filter((m) => !this.snapshotting.has(m.id));
    const targets = this.warmPoolTargets();
    // Nothing configured and nothing left from an earlier configuration: the common case.
    if (members.length === 0 && targets.size === 0) return;
    this.filling = true;
    try {
      const runtime = this.deps.config.defaultRuntime;
      for (const ref of this.deletingTemplates) targets.delete(ref);
      const shapes = new Map([...targets].map(([ref, { template }]) => [ref, this.shapeOf({}, template, runtime)]));
      // A member of the shape its pool now hands out (the template's resources may have changed since).
      const fitsPool = (r: SandboxRecord) => {
        const want = shapes.get(r.template);
        return want !== undefined && isLiveMember(r) && hasShape(r, want);
      };
      // Dead members, members of pools no longer configured (or now smaller, or of an older version of
      // their template, or of other resources than the template's now) are discarded.
      const kept = new Map<string, number>();
      for (const member of members) {
        const n = (kept.get(member.template) ?? 0) + 1;
        if (fitsPool(member) && n <= (targets.get(member.template)?.size ?? 0)) kept.set(member.template, n);
        else if (!this.claiming.has(member.id) && !this.locks.has(member.id) && member.state !== "creating") await this.discardMember(member);
      }
      members = this.deps.store.pooled();
      for (const [ref, { size }] of targets) {
        const have = members.filter((r) => r.template === ref && fitsPool(r)).length;
        this.deps.metrics.warmPool.set({ template: ref }, have);
        if (have >= size || !this.probes.get(runtime)?.available) continue;
        const shape = shapes.get(ref);
        if (!shape) continue;
        if (!hasMemoryFor(shape.memoryMiB)) {
          this.deps.log.debug({ template: ref }, "warm pool not refilled: the host is short of memory");
          continue;
        }
        await this.bootPoolMember(shape);
      }
    } catch (err) {
      this.deps.log.error({ err }, "refilling the warm pools failed");
    } finally {
      this.filling = false;
    }
  }

  /**
   * Pool sizes by template version: STASIS_WARM_POOL names templates (their latest version) and wins;
   * otherwise the latest version of each template keeps the pool its build asked for.
   */
  private warmPoolTargets(): Map<string, { size: number; template: ResolvedTemplate }> {
    const targets = new Map<string, { size: number; template: ResolvedTemplate }>();
    for (const [name, size] of Object.entries(this.deps.config.warmPools)) {
      try {
        const template = this.deps.templates.resolve(name);
        targets.set(template.ref, { size, template });
      } catch {
        // Not built (yet): nothing to keep warm.
      }
    }
    for (const t of this.deps.templates.pooledTemplates()) {
      if (t.pool > 0 && !Object.hasOwn(this.deps.config.warmPools, t.name) && !targets.has(t.ref)) targets.set(t.ref, { size: t.pool, template: t });
    }
    return targets;
  }

  /** On a stop: warm-pool members belong to nobody and are rebuilt on the next start, not kept or hibernated. */
  async discardPools(): Promise<void> {
    this.poolsClosed = true;
    await Promise.all(this.deps.store.pooled().map((member) => this.discardMember(member)));
  }

  private async discardMember(member: SandboxRecord): Promise<void> {
    await this.teardown(member).catch((err: Error) => this.deps.log.warn({ sandbox: member.id, err: err.message }, "discarding a warm-pool member failed"));
    this.deps.store.delete(member.id);
    this.activity.delete(member.id);
  }

  private async bootPoolMember(shape: SandboxShape): Promise<void> {
    const record = this.newRecord(CreateSandboxRequestSchema.parse({ template: shape.template.ref }), shape, Date.now(), true);
    const log = this.deps.log.child({ sandbox: record.id, runtime: shape.runtime, pool: shape.template.ref });
    this.deps.store.insert(record);
    try {
      await this.materialize(record, shape, this.usableDriver(shape.runtime), log);
      const live = this.live.get(record.id);
      if (!live) throw new Error("the member's agent went away");
      await warmUp(live.agent);
      // Frozen until claimed: no CPU while it waits, memory and the agent's spare shell kept.
      await this.exclusive(record.id, () => this.freeze(record.id, "requested"));
      log.info("warm-pool member ready");
    } catch (err) {
      log.warn({ err: (err as Error).message }, "warm-pool member failed to boot");
      await this.discardMember(record);
    }
  }

  get(id: string): Sandbox {
    return toSandbox(this.record(id));
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
    const rows = this.deps.store.list({ state: query.state, metadata, limit: query.limit + 1, after });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    const nextCursor = rows.length > query.limit && last ? listCursor(toSandbox(last)) : null;
    return { sandboxes: page.map(toSandbox), nextCursor };
  }

  /** When the lifetime would end if the sandbox woke now (standby does not count); null without a lifetime. */
  expiryIfWoken(id: string): number | null {
    const record = this.record(id);
    return record.standbySince === null ? record.expiresAt : wokenExpiry(record, Date.now());
  }

  /** What the sandbox uses now, read from its cgroup and its disk; a figure that cannot be read is null. */
  usage(id: string): SandboxUsage {
    const record = this.record(id);
    const cgroup = cgroupPathOf(id);
    let diskUsedBytes: number | null = null;
    try {
      const fs = statfsSync(this.deps.filesystem.paths(id).diskMount);
      diskUsedBytes = (fs.blocks - fs.bfree) * fs.bsize;
    } catch {
      // Not mounted (stopped, or after a reboot until the next wake).
    }
    const resident = (RESIDENT_STATES as readonly string[]).includes(record.state);
    return {
      cpuCount: record.cpu,
      cpuUsageUsec: resident ? sandboxCpuUsageUsec(this.deps.freezer.mode, cgroup) : null,
      memoryBytes: resident ? sandboxMemoryBytes(this.deps.freezer.mode, cgroup) : 0,
      memoryLimitBytes: record.memoryMiB * 1024 * 1024,
      diskUsedBytes,
      diskTotalBytes: record.diskMiB * 1024 * 1024,
    };
  }

  /** New lifetime, counted from now (or, in standby, from the moment the sandbox wakes). */
  setTimeout(id: string, timeoutMs: number): Sandbox {
    const record = this.record(id);
    if (!isAwakeOrAsleep(record.state)) throw new ApiError("sandbox_not_running", `sandbox ${id} is ${record.state}`);
    this.touch(id);
    this.deps.store.setExpiry(id, timeoutMs, (record.standbySince ?? Date.now()) + timeoutMs);
    return this.get(id);
  }

  setStandbyPolicy(id: string, policy: StandbyPolicy): Sandbox {
    const record = this.record(id);
    this.deps.store.setPolicy(id, {
      onTimeout: policy.onTimeout ?? record.onTimeout,
      idleTimeoutMs: policy.idleTimeoutMs ?? record.idleTimeoutMs,
      hibernateAfterMs: policy.hibernateAfterMs ?? record.hibernateAfterMs,
    });
    this.touch(id);
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    const record = this.record(id);
    if (record.state === "creating") {
      throw new ApiError("sandbox_not_running", `sandbox ${id} is still being created; delete it once it is running`);
    }
    // After any transition in flight (a hibernation is not torn down halfway).
    await this.exclusive(id, async () => {
      const current = this.deps.store.get(id);
      if (!current) return;
      this.deps.store.setState(id, "stopping");
      await this.teardown(current);
      this.deps.store.delete(id);
      this.activity.delete(id);
      this.deps.log.info({ sandbox: id }, "sandbox deleted");
    });
    this.updateGauges();
  }

  /**
   * The live sandbox for a request that needs its agent. A sandbox in standby (paused or hibernated, or
   * on its way there) is woken first, so clients never need to know it slept; other states are refused.
   */
  async acquire(id: string): Promise<LiveSandbox> {
    const record = this.record(id);
    this.touch(id);
    const live = this.live.get(id);
    // Fast path: running, and no transition (such as an automatic pause) queued behind this request.
    if (record.state === "running" && live && !this.locks.has(id)) return live;
    if (isAwakeOrAsleep(record.state) || record.state === "hibernating" || record.state === "resuming") {
      await this.exclusive(id, () => this.wake(id));
    }
    const now = this.record(id);
    const woken = this.live.get(id);
    if (now.state !== "running" || !woken) {
      throw new ApiError("sandbox_not_running", `sandbox ${id} is ${now.state}${now.stateReason ? ` (${now.stateReason})` : ""}`);
    }
    this.touch(id);
    return woken;
  }

  /** Marks the sandbox busy (an open stream or a running foreground command) until the returned release. */
  hold(id: string): () => void {
    const a = this.touch(id);
    a.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      a.holds--;
      a.lastAt = Date.now();
    };
  }

  /** Freezes a running sandbox in RAM. Its lifetime clock stops until it wakes. */
  pause(id: string): Promise<Sandbox> {
    return this.exclusive(id, async () => {
      await this.freeze(id, "requested");
      return this.get(id);
    });
  }

  /** Checkpoints a running or paused sandbox to disk: it then holds no CPU and no memory. */
  hibernate(id: string): Promise<Sandbox> {
    return this.exclusive(id, async () => {
      await this.checkpoint(id, "requested");
      return this.get(id);
    });
  }

  /** Wakes a paused or hibernated sandbox; concurrent callers share one wake. */
  async resume(id: string): Promise<Sandbox> {
    this.record(id);
    this.touch(id);
    await this.exclusive(id, () => this.wake(id));
    return this.get(id);
  }

  /**
   * Makes `count` independent sandboxes from the source's current memory, processes and files. The source
   * is checkpointed, its disk copied while frozen, and the source and every clone restored from the one
   * image; the source carries on from exactly where it was (a pause of one restore's length).
   */
  fork(id: string, count: number): Promise<Sandbox[]> {
    return this.exclusive(id, async () => {
      const source = this.record(id);
      const driver = this.usableDriver(source.runtime);
      if (!driver.checkpoint || !driver.restore) {
        throw new ApiError("not_supported_by_runtime", `${source.runtime} sandboxes cannot be forked: the runtime has no checkpoint; use gvisor`);
      }
      if (!isAwakeOrAsleep(source.state)) throw new ApiError("sandbox_not_running", `sandbox ${id} is ${source.state}`);
      this.checkCapacity(count);
      const started = performance.now();
      const wasState = source.state;
      const wasReason = source.standbyReason;
      if (wasState !== "hibernated") await this.checkpoint(id, "requested");
      const image = this.deps.filesystem.paths(id).checkpointDir;
      const now = Date.now();
      const clones: SandboxRecord[] = Array.from({ length: count }, () => ({
        ...source,
        id: newSandboxId(),
        state: "creating" as const,
        stateReason: null,
        metadata: { ...source.metadata },
        createdAt: now,
        expiresAt: now + source.timeoutMs,
        standbySince: null,
        standbyReason: null,
        forkedFrom: id,
        pooled: false,
        createdVia: "fork" as const,
      }));
      for (const clone of clones) this.deps.store.insert(clone);
      this.updateGauges();
      const log = this.deps.log.child({ sandbox: id });
      const owner = this.ownerOf(source);
      let copied = false;
      try {
        await this.deps.filesystem.clone(id, clones.map((c) => c.id), await this.deps.templates.rootfs(source.template, owner), owner);
        copied = true;
      } finally {
        // Without disks there is nothing to restore the clones onto; the source goes back at once.
        if (!copied) {
          await Promise.all(clones.map((c) => this.discard(c)));
          await this.returnSource(id, wasState, wasReason, image).finally(() => this.dropSharedImage(id, wasState, image));
        }
      }
      // The source and its clones come back from the one image side by side.
      const [sourceBack, ...results] = await Promise.allSettled([
        this.returnSource(id, wasState, wasReason, image),
        ...clones.map((clone) => this.restoreFrom(clone, image, "fork")),
      ]);
      this.dropSharedImage(id, wasState, image);
      if (sourceBack?.status === "rejected") log.error({ err: (sourceBack.reason as Error).message }, "the source did not come back after the fork; it stays hibernated");
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failure) {
        await Promise.all(clones.map((c) => this.discard(c)));
        throw asApiError(failure.reason, "fork failed");
      }
      const ms = performance.now() - started;
      log.info({ clones: clones.map((c) => c.id), ms: Math.round(ms) }, "sandbox forked");
      this.deps.metrics.standbyTransition.observe({ op: "fork" }, ms / 1000);
      return clones.map((c) => this.get(c.id));
    });
  }

  /** After a fork: the source goes back to the state it was in, and the shared image is dropped once unused. */
  private async returnSource(id: string, wasState: SandboxRecord["state"], wasReason: StandbyReason | null, image: string): Promise<void> {
    if (wasState === "hibernated") return;
    await this.restoreFrom(this.record(id), image, "resume", { keepImage: true });
    if (wasState === "paused") await this.freeze(id, wasReason ?? "requested");
  }

  /** The image taken for a fork is the source's own only while the source is hibernated. */
  private dropSharedImage(id: string, wasState: SandboxRecord["state"], image: string): void {
    if (wasState !== "hibernated" && this.deps.store.get(id)?.state !== "hibernated") discardImage(image);
  }

  /** Removes a clone that did not come up. */
  private async discard(clone: SandboxRecord): Promise<void> {
    await this.teardown(clone).catch((err: Error) => this.deps.log.error({ sandbox: clone.id, err: err.message }, "cleanup after a failed fork failed"));
    this.deps.store.delete(clone.id);
    this.updateGauges();
  }

  /** Runs `fn` after every transition already queued for this sandbox. */
  private exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return run;
  }

  private touch(id: string): Activity {
    let a = this.activity.get(id);
    if (!a) this.activity.set(id, (a = { lastAt: Date.now(), holds: 0 }));
    else a.lastAt = Date.now();
    return a;
  }

  /** Under the lock. `note` says more about an automatic standby (idle for how long, which lifetime). */
  private async freeze(id: string, reason: StandbyReason, note: string | null = null): Promise<void> {
    const record = this.record(id);
    if (record.state === "paused" || record.state === "hibernated") {
      // Asked for while already asleep on its own: it now sleeps because it was asked to.
      if (reason === "requested" && record.standbyReason !== "requested") {
        this.deps.store.setStandby(id, record.state, { since: record.standbySince ?? Date.now(), reason }, record.expiresAt, record.stateReason);
      }
      return;
    }
    if (record.state !== "running" || !this.live.has(id)) throw new ApiError("sandbox_not_running", `sandbox ${id} is ${record.state}`);
    const started = performance.now();
    await this.deps.freezer.freeze(cgroupPathOf(id));
    this.deps.store.setStandby(id, "paused", { since: Date.now(), reason }, record.expiresAt, note);
    this.deps.metrics.standbyTransition.observe({ op: "pause" }, (performance.now() - started) / 1000);
    this.deps.log.info({ sandbox: id, reason, note }, "sandbox paused");
    this.updateGauges();
  }

  /** Under the lock: writes the sandbox's memory image and stops its runtime. */
  private async checkpoint(id: string, reason: StandbyReason, note: string | null = null): Promise<void> {
    const record = this.record(id);
    if (record.state === "hibernated") return;
    const driver = this.deps.drivers.get(record.runtime);
    if (!driver?.checkpoint) {
      throw new ApiError("not_supported_by_runtime", `${record.runtime} sandboxes cannot hibernate (the runtime has no checkpoint); pause keeps them in RAM instead`);
    }
    const live = this.live.get(id);
    if ((record.state !== "running" && record.state !== "paused") || !live) throw new ApiError("sandbox_not_running", `sandbox ${id} is ${record.state}`);
    const log = this.deps.log.child({ sandbox: id });
    const started = performance.now();
    const paths = this.deps.filesystem.paths(id);
    const wasPaused = record.state === "paused";
    // The checkpoint runs inside the sandbox's kernel: a frozen sandbox must thaw for it.
    if (wasPaused) await this.deps.freezer.thaw(cgroupPathOf(id));
    const since = record.standbySince ?? Date.now();
    this.deps.store.setStandby(id, "hibernating", { since, reason }, record.expiresAt);
    this.updateGauges();
    // Replies are matched by id only within one channel: let requests in flight finish first.
    await live.agent.settled(2_000);
    this.live.delete(id);
    const partial = `${paths.checkpointDir}.partial`;
    rmSync(partial, { recursive: true, force: true });
    try {
      await driver.checkpoint(id, paths.runtimeDir, partial);
    } catch (err) {
      const alive = (await driver.hostPid(id, paths.runtimeDir).catch(() => null)) !== null;
      log.error({ err: (err as Error).message, alive }, "checkpoint failed");
      rmSync(partial, { recursive: true, force: true });
      if (alive && !live.agent.closed) {
        this.live.set(id, live);
        this.deps.store.setStandby(id, "running", null, record.expiresAt, `hibernation failed: ${(err as Error).message}`.slice(0, 4000));
        if (wasPaused) await this.freeze(id, record.standbyReason ?? reason, record.stateReason);
        throw new ApiError("sandbox_failed", `hibernation failed; the sandbox is still ${wasPaused ? "paused" : "running"}: ${(err as Error).message}`);
      }
      this.deps.store.setState(id, "failed", `hibernation failed and the sandbox did not survive it: ${(err as Error).message}`.slice(0, 4000));
      await this.teardown(record).catch((e: Error) => log.error({ err: e }, "cleanup after a failed hibernation failed"));
      throw new ApiError("sandbox_failed", `hibernation failed: ${(err as Error).message}`);
    } finally {
      this.updateGauges();
    }
    // The runtime is gone: read what the agent wrote before the checkpoint, then let the channel go.
    await live.agent.drained(500);
    live.agent.removeAllListeners("closed");
    live.agent.close("sandbox hibernated");
    await this.deps.filesystem.sync(id);
    renameSync(partial, paths.checkpointDir);
    this.deps.store.setStandby(id, "hibernated", { since, reason }, record.expiresAt, note ?? (wasPaused ? record.stateReason : null));
    const ms = performance.now() - started;
    this.deps.metrics.standbyTransition.observe({ op: "hibernate" }, ms / 1000);
    log.info({ ms: Math.round(ms), reason, note }, "sandbox hibernated");
    this.updateGauges();
  }

  /** Under the lock: brings a sandbox in standby back to running. */
  private async wake(id: string): Promise<void> {
    const record = this.record(id);
    if (record.state === "running") return;
    if (record.state === "paused") return this.thaw(record);
    if (record.state === "hibernated") return this.restoreFrom(record, this.deps.filesystem.paths(id).checkpointDir, "resume");
    throw new ApiError("sandbox_not_running", `sandbox ${id} is ${record.state}${record.stateReason ? ` (${record.stateReason})` : ""}`);
  }

  private async thaw(record: SandboxRecord): Promise<void> {
    const live = this.live.get(record.id);
    if (!live) throw new ApiError("sandbox_not_running", `sandbox ${record.id} is ${record.state}`);
    const started = performance.now();
    await this.deps.freezer.thaw(cgroupPathOf(record.id));
    this.deps.store.setStandby(record.id, "running", null, wokenExpiry(record, Date.now()));
    this.touch(record.id);
    this.updateGauges();
    // An agent reattached while frozen has not been heard from yet.
    if (!live.agent.version) await live.agent.waitReady(5_000);
    this.deps.metrics.standbyTransition.observe({ op: "thaw" }, (performance.now() - started) / 1000);
  }

  /**
   * Starts `record` from a checkpoint image: its own (resume) or its source's (fork). A failed resume
   * keeps the image and the hibernated state, so nothing is lost and the next request retries.
   */
  private async restoreFrom(record: SandboxRecord, image: string, why: "resume" | "fork" | "snapshot", options: { keepImage?: boolean } = {}): Promise<void> {
    const driver = this.deps.drivers.get(record.runtime);
    if (!driver?.restore) throw new ApiError("not_supported_by_runtime", `${record.runtime} sandboxes cannot be restored`);
    if (!existsSync(image)) {
      this.deps.store.setState(record.id, "failed", `its checkpoint image ${image} is missing`);
      throw new ApiError("sandbox_failed", `sandbox ${record.id} cannot wake: its checkpoint image is missing`);
    }
    const log = this.deps.log.child({ sandbox: record.id });
    const started = performance.now();
    const paths = this.deps.filesystem.paths(record.id);
    if (why === "resume") this.deps.store.setState(record.id, "resuming");
    this.updateGauges();
    try {
      // After a host reboot the disk and overlay are no longer mounted.
      if (!(await this.deps.filesystem.isMounted(record.id))) {
        const owner = this.ownerOf(record);
        await this.deps.filesystem.mount(record.id, await this.deps.templates.rootfs(record.template, owner), owner);
      }
      const prepared = performance.now() - started;
      let restored: { agent: AgentClient; exited: Promise<string> } | null = null;
      for (let attempt = 1; !restored; attempt++) {
        const launched = await driver.restore(this.launchSpec(record, paths.runtimeDir, paths.rootfs), image);
        try {
          restored = { agent: await this.connect(record, launched, AGENT_READY_TIMEOUT_MS, why === "resume" ? "wake" : why), exited: launched.exited };
        } catch (err) {
          // Once more after clearing the runtime's state: a previous daemon may have stopped before it
          // finished deleting the checkpointed container.
          await driver.destroy(record.id, paths.runtimeDir).catch(() => {});
          if (attempt >= 2) throw err;
          log.warn({ err: (err as Error).message }, "restore failed; retrying once with the runtime's state cleared");
        }
      }
      const now = Date.now();
      if (why === "resume") {
        if (!options.keepImage) discardImage(image);
        this.deps.store.setStandby(record.id, "running", null, wokenExpiry(record, now));
      } else {
        this.deps.store.setState(record.id, "running");
      }
      const current = this.record(record.id);
      this.attach(current, restored.agent, restored.exited);
      this.touch(record.id);
      const ms = performance.now() - started;
      this.deps.metrics.standbyTransition.observe({ op: why === "fork" ? "restore_clone" : why === "snapshot" ? "restore_snapshot" : "restore" }, ms / 1000);
      log.info({ ms: Math.round(ms), preparedMs: Math.round(prepared), why }, "sandbox restored from checkpoint");
    } catch (err) {
      this.deps.metrics.sandboxFailures.inc({ runtime: record.runtime, phase: why });
      log.error({ err }, "restore from checkpoint failed");
      if (why === "resume") this.deps.store.setState(record.id, "hibernated", `the last wake failed: ${(err as Error).message}`.slice(0, 4000));
      throw asApiError(err, "restore from checkpoint failed");
    } finally {
      this.updateGauges();
    }
  }

  private record(id: string): SandboxRecord {
    const record = this.deps.store.get(id);
    if (!record) throw new ApiError("sandbox_not_found", `no sandbox '${id}'`);
    return record;
  }

  private usableDriver(runtime: Runtime): RuntimeDriver {
    const driver = this.deps.drivers.get(runtime);
    const probe = this.probes.get(runtime);
    if (!driver || !probe?.available) {
      throw new ApiError("runtime_unavailable", `runtime '${runtime}' is not usable here: ${probe?.reason ?? "not configured"}; run \`stasis doctor\``);
    }
    return driver;
  }

  private checkCapacity(adding: number): void {
    // In-flight creates are counted through their `creating` records; hibernated sandboxes hold no memory.
    const counts = this.deps.store.countByState();
    const active = RESIDENT_STATES.reduce((n, state) => n + (counts[state] ?? 0), 0);
    if (active + adding > this.deps.config.maxSandboxes) {
      throw new ApiError("capacity_exceeded", `the daemon runs its maximum of ${this.deps.config.maxSandboxes} sandboxes (hibernated ones do not count)`);
    }
  }

  /** Host uid of the sandbox's root: crun sandboxes run in a user namespace. */
  private ownerOf(record: SandboxRecord): number {
    return record.runtime === "crun" ? this.deps.config.usernsBase : 0;
  }

  private launchSpec(record: SandboxRecord, runtimeDir: string, rootfs: string): SandboxLaunchSpec {
    return {
      id: record.id,
      dir: runtimeDir,
      rootfs,
      agentPath: this.deps.config.agentPath,
      cpu: record.cpu,
      memoryMiB: record.memoryMiB,
      pidsLimit: this.deps.config.pidsLimit,
      hostname: "sandbox",
    };
  }

  /** Opens the agent channel of a freshly started runtime and waits until the agent answers. */
  private async connect(record: SandboxRecord, launched: LaunchedSandbox, timeoutMs: number, phase: string): Promise<AgentClient> {
    const agent = new AgentClient(launched.channel, this.deps.log.child({ sandbox: record.id }));
    const exitedEarly = launched.exited.then((reason) => {
      throw new ApiError("sandbox_failed", `sandbox exited during ${phase} (${reason}): ${this.runtimeLogTail(record.id)}`);
    });
    try {
      await Promise.race([agent.waitReady(timeoutMs), exitedEarly]);
      return agent;
    } catch (err) {
      agent.close(`${phase} failed`);
      throw err;
    } finally {
      exitedEarly.catch(() => {});
    }
  }

  /** `exited` is known only for sandboxes this daemon process started (not for reattached ones). */
  private attach(record: SandboxRecord, agent: AgentClient, exited?: Promise<string>): void {
    this.live.set(record.id, { record, agent });
    this.touch(record.id);
    // A spare shell for the commonest request (sh -c with the sandbox's env, as root): spawning a process
    // inside gVisor costs milliseconds, so the agent keeps one started ahead of time.
    agent
      .request("prewarm", { env: record.env, user: "root" })
      .catch((err: Error) => this.deps.log.debug({ sandbox: record.id, err: err.message }, "agent keeps no spare shell"));
    agent.once("closed", (reason: string) => {
      this.onAgentClosed(record, agent, reason, exited).catch((err: Error) => this.deps.log.error({ err, sandbox: record.id }, "handling a dead sandbox failed"));
    });
  }

  private async onAgentClosed(record: SandboxRecord, agent: AgentClient, reason: string, exited?: Promise<string>): Promise<void> {
    if (this.live.get(record.id)?.agent !== agent) return;
    this.live.delete(record.id);
    const state = this.deps.store.get(record.id)?.state;
    if (state !== "running" && state !== "paused") return;
    // Failed at once (requests in flight were just rejected); the reason is refined once the runtime's
    // exit status is known.
    this.deps.store.setState(record.id, "failed", `sandbox died (${reason})`);
    this.deps.metrics.sandboxFailures.inc({ runtime: record.runtime, phase: "run" });
    const runtimeExit = exited ? await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 1000))]) : null;
    const why = `sandbox died (${runtimeExit ?? reason}); ${this.deathCause(record, runtimeExit)}`;
    this.deps.log.warn({ sandbox: record.id, reason: why }, "sandbox died");
    this.deps.store.setState(record.id, "failed", why);
    await this.teardown(record).catch((err: Error) => this.deps.log.error({ err }, "cleanup of dead sandbox failed"));
    this.updateGauges();
  }

  /** Kills the runtime and removes the sandbox's files. Safe to repeat; concurrent calls share one run. */
  private teardown(record: SandboxRecord): Promise<void> {
    const pending = this.tearingDown.get(record.id);
    if (pending) return pending;
    const work = this.destroy(record).finally(() => this.tearingDown.delete(record.id));
    this.tearingDown.set(record.id, work);
    return work;
  }

  private async destroy(record: SandboxRecord): Promise<void> {
    const live = this.live.get(record.id);
    this.live.delete(record.id);
    live?.agent.close("sandbox deleted");
    // Frozen processes cannot die: thaw before killing.
    if (await this.deps.freezer.isFrozen(cgroupPathOf(record.id))) {
      await this.deps.freezer.thaw(cgroupPathOf(record.id)).catch((err: Error) => this.deps.log.warn({ err }, "thaw before teardown failed"));
    }
    const driver = this.deps.drivers.get(record.runtime);
    if (driver) await driver.destroy(record.id, this.deps.filesystem.paths(record.id).runtimeDir);
    await this.deps.filesystem.remove(record.id);
  }

  /**
   * After a restart (or a crash): brings every sandbox the store knows to an honest state. Running and
   * paused ones are reattached; hibernated ones stay on disk; a transition the previous daemon did not
   * finish is settled from what is actually there; anything lost is marked failed with the reason.
   */
  private async reconcile(): Promise<void> {
    for (const record of this.deps.store.live()) {
      const log = this.deps.log.child({ sandbox: record.id });
      const finish = async (state: "stopped" | "failed", reason: string) => {
        log.warn({ reason }, `marked ${state} after a restart`);
        this.deps.store.setState(record.id, state, reason);
        await this.teardown(record).catch((err: Error) => log.error({ err }, "teardown after restart failed"));
      };
      const driver = this.deps.drivers.get(record.runtime);
      const paths = this.deps.filesystem.paths(record.id);
      const imageComplete = existsSync(paths.checkpointDir);
      if (record.state === "stopping") {
        // A delete or expiry was under way: finish tearing down; a retried DELETE removes the record.
        await finish("stopped", "stopped while the daemon restarted");
        continue;
      }
      if (record.state === "creating" || !driver) {
        await finish("failed", `daemon stopped while the sandbox was ${record.state}`);
        continue;
      }
      if (record.state === "hibernated") {
        if (imageComplete) continue;
        await finish("failed", `hibernated, but its checkpoint image ${paths.checkpointDir} is gone`);
        continue;
      }
      // A frozen sandbox cannot answer the runtime's state query: look at its cgroup instead.
      const alive =
        record.state === "paused"
          ? await this.deps.freezer.hasProcesses(cgroupPathOf(record.id))
          : (await driver.hostPid(record.id, paths.runtimeDir)) !== null;
      if (record.state === "hibernating" || record.state === "resuming") {
        if (alive && !(record.state === "hibernating" && imageComplete)) {
          // The transition did not happen (checkpoint aborted) or completed (restore finished): it runs.
          rmSync(`${paths.checkpointDir}.partial`, { recursive: true, force: true });
          if (record.state === "resuming") rmSync(paths.checkpointDir, { recursive: true, force: true });
          this.deps.store.setStandby(record.id, "running", null, wokenExpiry(record, Date.now()), `the daemon restarted while it was ${record.state}`);
        } else if (imageComplete) {
          await driver.destroy(record.id, paths.runtimeDir).catch(() => {});
          this.deps.store.setStandby(
            record.id,
            "hibernated",
            { since: record.standbySince ?? Date.now(), reason: record.standbyReason ?? "requested" },
            record.expiresAt,
            `the daemon restarted while it was ${record.state}`,
          );
          log.info("settled as hibernated after a restart");
          continue;
        } else {
          await finish("failed", `the daemon stopped while the sandbox was ${record.state}, and no complete checkpoint was left`);
          continue;
        }
      } else if (!alive) {
        await finish("failed", "the sandbox was not running when the daemon restarted (host reboot or runtime crash)");
        continue;
      }
      const state = this.record(record.id).state;
      let agent: AgentClient | null = null;
      try {
        agent = new AgentClient(new FifoPair(paths.runtimeDir).openForDaemon(), log);
        // A paused sandbox stays frozen and cannot answer: its agent is checked when it is resumed.
        if (state === "running") await agent.waitReady(5_000);
        this.attach(this.record(record.id), agent);
        log.info({ state }, "reattached to sandbox");
      } catch (err) {
        agent?.close("reattach failed");
        await finish("failed", `could not reattach after a daemon restart: ${(err as Error).message}`);
      }
    }
  }

  /** Each second: lifetimes that ended, idle sandboxes to pause, long-paused ones to hibernate. */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = Date.now();
      const toHibernate: SandboxRecord[] = [];
      for (const record of this.deps.store.live()) {
        if (this.locks.has(record.id)) continue;
        if (record.state === "running" && this.live.has(record.id)) {
          if (record.expiresAt !== null && record.expiresAt <= now) {
            await this.lifetimeReached(record);
            continue;
          }
          const a = this.activity.get(record.id) ?? this.touch(record.id);
          if (record.idleTimeoutMs > 0 && a.holds === 0 && now - a.lastAt >= record.idleTimeoutMs) {
            await this.exclusive(record.id, () => this.autoStandby(record.id, "idle")).catch((err: Error) =>
              this.deps.log.error({ sandbox: record.id, err: err.message }, "automatic pause failed"),
            );
          }
        } else if (
          record.state === "paused" &&
          record.hibernateAfterMs > 0 &&
          record.standbySince !== null &&
          now - record.standbySince >= record.hibernateAfterMs &&
          this.deps.drivers.get(record.runtime)?.checkpoint
        ) {
          toHibernate.push(record);
        }
      }
      void this.fillPools();
      await forEachLimited(toHibernate, this.deps.config.hibernateParallelism, (record) =>
        this.exclusive(record.id, () => this.autoStandby(record.id, "hibernate")).catch((err: Error) =>
          this.deps.log.error({ sandbox: record.id, err: err.message }, "automatic hibernation failed"),
        ),
      );
    } catch (err) {
      this.deps.log.error({ err }, "standby sweep failed");
    } finally {
      this.sweeping = false;
    }
  }

  /** Under the lock, re-checking what the sweep saw: a request may have arrived since. */
  private async autoStandby(id: string, step: "idle" | "hibernate"): Promise<void> {
    const record = this.deps.store.get(id);
    const a = this.activity.get(id);
    if (!record) return;
    const now = Date.now();
    if (step === "idle") {
      if (record.state !== "running" || record.idleTimeoutMs <= 0 || (a && (a.holds > 0 || now - a.lastAt < record.idleTimeoutMs))) return;
      await this.freeze(id, "idle", `idle for ${Math.round((now - (a?.lastAt ?? now)) / 1000)} s`);
    } else {
      if (record.state !== "paused" || record.standbySince === null || now - record.standbySince < record.hibernateAfterMs) return;
      // Hibernating keeps the reason it went to sleep for.
      await this.checkpoint(id, record.standbyReason ?? "idle", `paused for ${Math.round((now - record.standbySince) / 1000)} s`);
    }
  }

  private async lifetimeReached(record: SandboxRecord): Promise<void> {
    const log = this.deps.log.child({ sandbox: record.id });
    const why = `lifetime of ${record.timeoutMs} ms reached`;
    await this.exclusive(record.id, async () => {
      const current = this.deps.store.get(record.id);
      if (!current || current.state !== "running" || current.expiresAt === null || current.expiresAt > Date.now()) return;
      if (current.onTimeout === "standby") {
        log.info(`${why}; going into standby`);
        await this.freeze(record.id, "lifetime", why);
        return;
      }
      log.info(`${why}; stopping`);
      this.deps.store.setState(record.id, "stopping");
      try {
        await this.teardown(current);
        this.deps.store.setState(record.id, "stopped", why);
      } catch (err) {
        log.error({ err }, "stopping an expired sandbox failed");
        this.deps.store.setState(record.id, "failed", `lifetime reached, but stopping it failed: ${(err as Error).message}`);
      }
    }).catch((err: Error) => log.error({ err: err.message }, "handling the end of a lifetime failed"));
    this.updateGauges();
  }

  private runtimeLogTail(id: string): string {
    try {
      const text = readFileSync(join(this.deps.filesystem.paths(id).runtimeDir, "runtime.log"), "utf8");
      return text.trim().split("\n").slice(-5).join(" | ").slice(-2000) || "no runtime output";
    } catch {
      return "no runtime log";
    }
  }

  private deathCause(record: SandboxRecord, runtimeExit: string | null): string {
    const log = this.runtimeLogTail(record.id);
    // The kernel's OOM killer is the one thing that SIGKILLs a runtime we did not stop ourselves.
    // (`runsc run` reports its sandbox's SIGKILL as exit code 137.)
    if (/SIGKILL|code 137\b/.test(runtimeExit ?? "") || /oom|out of memory/i.test(log)) {
      return `most likely its memory limit of ${record.memoryMiB} MiB was exceeded (the kernel OOM-killed it); runtime log: ${log}`;
    }
    return `runtime log: ${log}`;
  }

  updateGauges(): void {
    const counts = this.deps.store.countByState();
    for (const state of SandboxStateSchema.options) this.deps.metrics.sandboxes.set({ state }, counts[state] ?? 0);
  }

  /** Each configured warm pool: its size, members ready (frozen) and booting. */
  warmPools(): { template: string; size: number; ready: number; booting: number }[] {
    const members = this.deps.store.pooled().filter((m) => !this.snapshotting.has(m.id));
    return [...this.warmPoolTargets()].map(([template, { size }]) => ({
      template,
      size,
      ready: members.filter((r) => r.template === template && r.state === "paused").length,
      booting: members.filter((r) => r.template === template && (r.state === "creating" || r.state === "running")).length,
    }));
  }

  info(): { total: number; running: number; max: number } {
    const counts = this.deps.store.countByState();
    return {
      total: Object.values(counts).reduce((a, b) => a + b, 0),
      running: counts.running ?? 0,
      max: this.deps.config.maxSandboxes,
    };
  }
}

/** Moves a used image aside at once and deletes it off the request path (unlinking 200 MB takes a while). */
function discardImage(image: string): void {
  const aside = `${image}.old-${Date.now()}`;
  try {
    renameSync(image, aside);
  } catch {
    return;
  }
  void rm(aside, { recursive: true, force: true }).catch(() => {});
}

/** The list cursor that continues right after this sandbox (lists are newest first). */
export function listCursor(sandbox: Pick<Sandbox, "createdAt" | "id">): string {
  return Buffer.from(`${Date.parse(sandbox.createdAt)}:${sandbox.id}`).toString("base64url");
}

/**
 * Readies a fresh sandbox for its first command before it is frozen in a pool: one shell command through
 * the agent's spare shell warms gVisor's caches for the shell (a fresh sandbox's first command costs
 * ~40 ms more than later ones), then a pause lets the agent start the next spare, which the claimer's
 * first command takes.
 */
async function warmUp(agent: AgentClient): Promise<void> {
  await execToExit(agent, { cmd: ["/bin/sh", "-c", "true"], env: {}, user: "root" }, 5_000);
  await new Promise((r) => setTimeout(r, 250));
}

/** Runs a short command through the agent to its exit; the output is kept (bounded) for error messages. */
async function execToExit(agent: AgentClient, args: { cmd: string[]; env: Record<string, string>; user: string; cwd?: string }, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  const { pid } = await agent.request<{ pid: number }>("exec", { ...args, stdin: false, subscribe: true, window: 65_536 });
  return new Promise((resolve) => {
    let output = "";
    let finished = false;
    const timer = setTimeout(() => done(null), timeoutMs);
    // Events that came before the subscription are replayed inside subscribe(): `done` may run first.
    const unsubscribe = agent.subscribe(pid, (e) => {
      if (e.ev === "out" && output.length < 8192) output += e.data.toString("utf8");
      if (e.ev === "exit") done(e.code);
    });
    function done(code: number | null) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      queueMicrotask(() => unsubscribe());
      if (code === null) agent.request("signal", { pid, signal: "SIGKILL" }).catch(() => {});
      resolve({ code, output });
    }
  });
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(path) : statSync(path).blocks * 512;
  }
  return total;
}

/** Whether the host can give `memoryMiB` more and still keep a tenth of its memory free. */
function hasMemoryFor(memoryMiB: number): boolean {
  try {
    const info = readFileSync("/proc/meminfo", "utf8");
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(info)?.[1] ?? NaN);
    return kib("MemAvailable") - memoryMiB * 1024 > kib("MemTotal") / 10;
  } catch {
    return false;
  }
}

function newSandboxId(): string {
  return `sbx_${randomBytes(10).toString("hex").slice(0, 16)}`;
}

/** States from which a sandbox can be woken, paused, hibernated or forked. */
function isAwakeOrAsleep(state: SandboxRecord["state"]): boolean {
  return state === "running" || state === "paused" || state === "hibernated";
}

/**
 * The lifetime's end after standby: standby does not count, so the end moves back by the time spent
 * asleep; a sandbox put to sleep by its lifetime's end wakes with a fresh lifetime.
 */
export function wokenExpiry(record: Pick<SandboxRecord, "expiresAt" | "standbySince" | "timeoutMs">, now: number): number | null {
  if (record.expiresAt === null) return null;
  const since = record.standbySince ?? now;
  const remaining = record.expiresAt - since;
  return remaining > 0 ? now + remaining : now + record.timeoutMs;
}

function asApiError(err: unknown, what: string): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof TemplateNotFoundError) return new ApiError("template_not_found", err.message);
  return new ApiError("sandbox_failed", `${what}: ${(err as Error).message}`);
}

/** Runs `fn` over items with at most `limit` in flight. */
async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  const limiter = new Limiter(limit);
  await Promise.all(items.map((item) => limiter.run(() => fn(item))));
}

/** A warm-pool member that is booting, booted or frozen (not dead). */
/** Whether a sandbox was made with exactly this shape: template version, runtime, cpu, memory, disk. */
function hasShape(r: SandboxRecord, shape: SandboxShape): boolean {
  return r.template === shape.template.ref && r.runtime === shape.runtime && r.cpu === shape.cpu && r.memoryMiB === shape.memoryMiB && r.diskMiB === shape.diskMiB;
}

function isLiveMember(r: SandboxRecord): boolean {
  return r.state === "creating" || r.state === "running" || r.state === "paused";
}

function toSandbox(r: SandboxRecord): Sandbox {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: r.id,
    template: r.template,
    runtime: r.runtime,
    state: r.state,
    stateReason: r.stateReason,
    cpu: r.cpu,
    memoryMiB: r.memoryMiB,
    diskMiB: r.diskMiB,
    env: r.env,
    metadata: r.metadata,
    timeoutMs: r.timeoutMs,
    onTimeout: r.onTimeout,
    idleTimeoutMs: r.idleTimeoutMs,
    hibernateAfterMs: r.hibernateAfterMs,
    createdAt: new Date(r.createdAt).toISOString(),
    // In standby the lifetime clock stands still, so the sandbox has no expiry until it runs again.
    expiresAt: r.standbySince !== null ? null : iso(r.expiresAt),
    standbySince: iso(r.standbySince),
    standbyReason: r.standbyReason,
    forkedFrom: r.forkedFrom,
    createdVia: r.createdVia,
  };
}
