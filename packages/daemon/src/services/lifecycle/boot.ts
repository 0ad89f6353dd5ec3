import type { Logger } from "pino";
import type { CreateSandboxParams, Runtime } from "@stasis/protocol";
import type { AgentClient } from "../../agent-client/agent-client.js";
import { ApiError } from "../../errors/api-error.js";
import { crashPoint } from "../../runtime/crash-point.js";
import { CheckpointImage } from "../../runtime/checkpoint-image.js";
import { canCheckpoint, type RuntimeDriver, type SandboxLaunchSpec } from "../../runtime/driver.js";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import { TemplateNotFoundError, type ResolvedTemplate } from "../../templates/template-store.js";
import { startTemplateCommand } from "./agent-tasks.js";
import { newPreviewToken, writeNetworkFiles } from "./network-files.js";
import { asApiError, newSandboxId, wokenExpiry, type SandboxShape } from "./records.js";
import { AGENT_READY_TIMEOUT_MS, type SandboxCore } from "./sandbox-core.js";
import { traced } from "../../observability/tracing.js";
import { stopwatch } from "./stopwatch.js";

export type RestoreReason = "resume" | "fork" | "snapshot";

export interface RestoreOptions {
  /** Keep the image after a resume (a fork's source: the clones restore from it too). */
  keepImage?: boolean;
  /** The launch (its network set up) made ahead by the caller, for the first attempt. */
  launch?: Promise<SandboxLaunchSpec>;
}

/**
 * Brings sandboxes up: what a create resolves to (template, shape, record), a cold boot, and a restore from
 * a checkpoint image (a wake from disk, a fork's clone, a snapshot template's create).
 */
export class Booter {
  /** Templates whose snapshot another runtime build took, warned about once. */
  private readonly staleSnapshotsLogged = new Set<string>();

  constructor(private readonly core: SandboxCore) {}

  resolveTemplate(ref: string): ResolvedTemplate {
    let template: ResolvedTemplate;
    try {
      template = this.core.deps.templates.resolve(ref);
    } catch (err) {
      if (err instanceof TemplateNotFoundError) throw new ApiError("template_not_found", err.message);
      throw err;
    }
    this.refuseIfDeleting(template.ref);
    return template;
  }

  refuseIfDeleting(ref: string): void {
    if (this.core.deletingTemplates.has(ref)) throw new ApiError("template_not_found", `template ${ref} is being deleted`);
  }

  /** Resources: the request's, else the template's. A snapshot's disk is part of the snapshot. */
  shapeOf(params: Partial<Pick<CreateSandboxParams, "cpu" | "memoryMiB" | "diskMiB" | "env">>, template: ResolvedTemplate, runtime: Runtime): SandboxShape {
    const diskMiB = params.diskMiB ?? template.resources.diskMiB;
    if (template.snapshot && diskMiB !== template.resources.diskMiB && this.checkpointer(runtime)) {
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

  newRecord(params: CreateSandboxParams, shape: SandboxShape, now: number, pooled = false, placeholders: Record<string, string> = {}, headerRules: Record<string, Record<string, string>> = {}): SandboxRecord {
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
      agent: this.core.agent.path,
      network: this.core.deps.network ? { address: null, policy: this.core.policyFor(params.network, shape.template), placeholders, previewToken: newPreviewToken(), ...(Object.keys(headerRules).length > 0 ? { headerRules } : {}) } : null,
    };
  }

  private checkpointer(runtime: Runtime) {
    const driver = this.core.deps.drivers.get(runtime);
    return driver && canCheckpoint(driver) ? driver : null;
  }

  /** What takes and restores snapshots here (the checkpointing runtime's build), or null without one. */
  snapshotFormat(runtime: Runtime = "gvisor"): string | null {
    const driver = this.checkpointer(runtime);
    // The agent is part of the image (restored as it was checkpointed): another agent's snapshot is stale.
    // So is one taken without a network (restored into a namespace, its stack would not match), and back.
    return driver ? `${driver.imageFormat()} agent ${this.core.agent.hash}${this.core.deps.network ? " net" : ""}` : null;
  }

  private usesSnapshot(shape: SandboxShape): boolean {
    const snap = shape.template.snapshot;
    const format = this.snapshotFormat(shape.runtime);
    if (!snap || format === null) return false;
    // A checkpoint taken by another runsc (an upgrade) or platform may not restore: boot cold instead.
    if (snap.runtime !== null && snap.runtime !== format) {
      if (!this.staleSnapshotsLogged.has(shape.template.ref)) {
        this.staleSnapshotsLogged.add(shape.template.ref);
        this.core.log.warn({ template: shape.template.ref, snapshotBy: snap.runtime, now: format }, "the template's snapshot was taken by another runsc; its sandboxes boot cold until it is rebuilt");
      }
      return false;
    }
    return true;
  }

  /**
   * Brings an inserted `creating` record up: restored from its template's snapshot (the start command
   * already running), or booted, with the template's start command started and awaited.
   */
  async materialize(record: SandboxRecord, shape: SandboxShape, driver: RuntimeDriver, log: Logger): Promise<void> {
    const snapshot = shape.template.snapshot;
    if (snapshot && this.usesSnapshot(shape)) {
      await this.queued(async () => {
        const owner = this.core.ownerOf(record);
        const lower = await this.core.deps.templates.rootfs(record.template, owner, (line) => log.info(line));
        await this.core.deps.filesystem.createFromImage(record.id, snapshot.disk, lower, owner);
        writeNetworkFiles(this.core, record);
        await this.restoreFrom(record, new CheckpointImage(snapshot.image), "snapshot");
      });
      return;
    }
    const agent = await this.boot(record, driver, log);
    if (shape.template.start) await startTemplateCommand(record, agent, shape.template);
  }

  /** Boots and restores are CPU-bound: a burst queues for a slot, each then gets the CPU its timeout assumes. */
  private queued<T>(fn: () => Promise<T>): Promise<T> {
    this.core.deps.metrics.createsWaiting.inc();
    return this.core.boots.run(() => {
      this.core.deps.metrics.createsWaiting.dec();
      return fn();
    });
  }

  /** Boots an inserted `creating` record until its agent answers; the record is then `running`. */
  async boot(record: SandboxRecord, driver: RuntimeDriver, log: Logger): Promise<AgentClient> {
    // Where a boot's time goes, in its log line (as a wake's).
    const lap = stopwatch();
    const { agent, launched } = await this.queued(async () => {
      const phases = { queuedMs: lap(), diskMs: 0, networkMs: 0, launchMs: 0, agentMs: 0 };
      const owner = this.core.ownerOf(record);
      await traced("create.disk", {}, async () => {
        const lower = await this.core.deps.templates.rootfs(record.template, owner, (line) => log.info(line));
        await this.core.deps.filesystem.create(record.id, lower, record.diskMiB, owner);
      });
      writeNetworkFiles(this.core, record);
      phases.diskMs = lap();
      const spec = await this.prepareLaunch(record);
      phases.networkMs = lap();
      const launched = await traced("create.launch", { "stasis.runtime": record.runtime }, () => driver.launch(spec));
      phases.launchMs = lap();
      crashPoint("create.launched");
      const agent = await traced("sandbox.agent_ready", {}, () => this.core.connect(record, launched, AGENT_READY_TIMEOUT_MS, "start"));
      phases.agentMs = lap();
      log.info(phases, "sandbox booted");
      return { agent, launched };
    });
    record.state = "running";
    this.core.deps.store.setState(record.id, "running");
    this.core.attach(record, agent, launched.exited);
    return agent;
  }

  /** The sandbox's namespace and rules, then its launch spec. */
  prepareLaunch(record: SandboxRecord, options: { keptNetwork?: boolean } = {}): Promise<SandboxLaunchSpec> {
    return traced("sandbox.network_setup", {}, () => this.core.prepareLaunch(record, options));
  }

  /**
   * Starts `record` from a checkpoint image: its own (resume) or its source's (fork, snapshot). A failed
   * resume keeps the image and the hibernated state, so nothing is lost and the next request retries.
   */
  async restoreFrom(record: SandboxRecord, image: CheckpointImage, why: RestoreReason, options: RestoreOptions = {}): Promise<void> {
    const { store, metrics, filesystem, templates } = this.core.deps;
    const driver = this.checkpointer(record.runtime);
    if (!driver) throw new ApiError("not_supported_by_runtime", `${record.runtime} sandboxes cannot be restored`);
    if (!image.isComplete()) {
      store.setState(record.id, "failed", `its checkpoint image ${image.path} is missing`);
      throw new ApiError("sandbox_failed", `sandbox ${record.id} cannot wake: its checkpoint image is missing`);
    }
    const log = this.core.log.child({ sandbox: record.id });
    const started = performance.now();
    if (why === "resume") store.setState(record.id, "resuming");
    this.core.updateGauges();
    try {
      // After a host reboot the disk and overlay are no longer mounted.
      if (!(await filesystem.isMounted(record.id))) {
        const owner = this.core.ownerOf(record);
        await filesystem.mount(record.id, await templates.rootfs(record.template, owner), owner);
      }
      const prepared = performance.now() - started;
      const inStep = image.channelInStep();
      let restored: { agent: AgentClient; exited: Promise<string> } | null = null;
      // Where a wake's time goes, in its log line: the network, the runtime's start, the agent's answer.
      const phases = { networkMs: 0, launchMs: 0, agentMs: 0 };
      for (let attempt = 1; !restored; attempt++) {
        const lap = stopwatch();
        // A sandbox woken soon after its hibernation finds its namespace and rules kept (Standby.checkpoint).
        const spec = attempt === 1 && options.launch ? await options.launch : await this.prepareLaunch(record, { keptNetwork: why === "resume" && attempt === 1 });
        phases.networkMs += lap();
        const launched = await traced("sandbox.restore", { "stasis.sandbox.id": record.id, "stasis.restore.why": why, "stasis.restore.attempt": attempt }, () => driver.restore(spec, image));
        crashPoint(why === "fork" ? "fork.restored" : "wake.restored");
        phases.launchMs += lap();
        try {
          const phase = why === "resume" ? "wake" : why;
          const agent = await traced("sandbox.agent_ready", {}, () => this.core.connect(record, launched, AGENT_READY_TIMEOUT_MS, phase, (a) => a.restored(AGENT_READY_TIMEOUT_MS, inStep)));
          phases.agentMs += lap();
          restored = { agent, exited: launched.exited };
        } catch (err) {
          // Once more after clearing the runtime's state of the attempt.
          await driver.destroy(this.core.ref(record.id)).catch(() => {});
          if (attempt >= 2) throw err;
          log.warn({ err: (err as Error).message }, "restore failed; retrying once with the runtime's state cleared");
        }
      }
      const now = Date.now();
      if (why === "resume") {
        if (!options.keepImage) image.discard();
        store.setStandby(record.id, "running", null, wokenExpiry(record, now));
      } else {
        store.setState(record.id, "running");
      }
      this.core.attach(this.core.record(record.id), restored.agent, restored.exited);
      const ms = performance.now() - started;
      metrics.standbyTransition.observe({ op: why === "fork" ? "restore_clone" : why === "snapshot" ? "restore_snapshot" : "restore" }, ms / 1000);
      log.info({ ms: Math.round(ms), preparedMs: Math.round(prepared), ...phases, why }, "sandbox restored from checkpoint");
    } catch (err) {
      metrics.sandboxFailures.inc({ runtime: record.runtime, phase: why });
      log.error({ err }, "restore from checkpoint failed");
      if (why === "resume") store.setState(record.id, "hibernated", `the last wake failed: ${(err as Error).message}`.slice(0, 4000));
      throw asApiError(err, "restore from checkpoint failed");
    } finally {
      this.core.updateGauges();
    }
  }
}
