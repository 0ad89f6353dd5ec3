import type { StandbyReason } from "@stasis/protocol";
import { ApiError } from "../../errors/api-error.js";
import { CheckpointImage } from "../../runtime/checkpoint-image.js";
import { crashPoint } from "../../runtime/crash-point.js";
import { canCheckpoint, canPause, type CheckpointingDriver, type PausableDriver } from "../../runtime/driver.js";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import type { Booter } from "./boot.js";
import { notRunning, wokenExpiry } from "./records.js";
import type { SandboxCore } from "./sandbox-core.js";
import { stopwatch } from "./stopwatch.js";
import { traced } from "../../observability/tracing.js";

export interface CheckpointOptions {
  /** The runtime starts again at once from the image (Forker): the disk is not synced, the network stays. */
  forFork?: boolean;
  /** The namespace and rules go now, not after a while (a daemon's stop: nothing would end them later). */
  leaveNetwork?: boolean;
}

/** How long a hibernation waits for foreground commands in flight to end. */
export const HIBERNATE_WAITS_FOR_COMMANDS_MS = 10_000;
/**
 * How long a hibernation waits for the agent to confirm it read everything sent (a ping's answer). A busy
 * or resyncing agent that takes longer is checkpointed anyway; its wake then resyncs the channel in full.
 */
const CHANNEL_IN_STEP_WAIT_MS = 1_000;

/**
 * The standby tiers, each step under the sandbox's lock: pause (frozen in RAM), hibernate (memory image on
 * disk, runtime stopped) and wake from either.
 */
export class Standby {
  constructor(
    private readonly core: SandboxCore,
    private readonly booter: Booter,
  ) {}

  /** The sandbox's memory image (complete once it exists; written under its partial name). */
  image(id: string): CheckpointImage {
    return new CheckpointImage(this.core.deps.filesystem.paths(id).checkpointDir);
  }

  pausable(record: SandboxRecord): PausableDriver {
    const driver = this.core.deps.drivers.get(record.runtime);
    if (!driver || !canPause(driver)) throw new ApiError("not_supported_by_runtime", `${record.runtime} sandboxes cannot be paused`);
    return driver;
  }

  checkpointer(record: SandboxRecord, what = "hibernate"): CheckpointingDriver {
    const driver = this.core.deps.drivers.get(record.runtime);
    if (!driver || !canCheckpoint(driver)) {
      throw new ApiError("not_supported_by_runtime", `${record.runtime} sandboxes cannot ${what} (the runtime has no checkpoint); ${what === "hibernate" ? "pause keeps them in RAM instead" : "use gvisor"}`);
    }
    return driver;
  }

  canHibernate(record: SandboxRecord): boolean {
    const driver = this.core.deps.drivers.get(record.runtime);
    return driver !== undefined && canCheckpoint(driver);
  }

  /** Under the lock. `note` says more about an automatic standby (idle for how long, which lifetime). */
  freeze(id: string, reason: StandbyReason, note: string | null = null): Promise<void> {
    return traced("sandbox.pause", { "stasis.sandbox.id": id, "stasis.standby.reason": reason }, () => this.freezeTraced(id, reason, note));
  }

  private async freezeTraced(id: string, reason: StandbyReason, note: string | null): Promise<void> {
    const { store, metrics } = this.core.deps;
    const record = this.core.record(id);
    if (record.state === "paused" || record.state === "hibernated") {
      // Asked for while already asleep on its own: it now sleeps because it was asked to.
      if (reason === "requested" && record.standbyReason !== "requested") {
        store.setStandby(id, record.state, { since: record.standbySince ?? Date.now(), reason }, record.expiresAt, record.stateReason);
      }
      return;
    }
    if (record.state !== "running" || !this.core.live.has(id)) throw notRunning(record);
    const driver = this.pausable(record);
    const started = performance.now();
    // Idle kept-alive connections would be closed while it sleeps, and a frozen stack never sees it.
    await this.core.deps.inbound?.closeIdle(id);
    try {
      await driver.pause(this.core.ref(id));
      crashPoint("pause.frozen");
    } catch (err) {
      // The driver thawed it again: it runs on, and a later pause may succeed.
      throw new ApiError("agent_timeout", `sandbox ${id} could not be paused, it keeps running: ${(err as Error).message}`);
    }
    store.setStandby(id, "paused", { since: Date.now(), reason }, record.expiresAt, note);
    metrics.standbyTransition.observe({ op: "pause" }, (performance.now() - started) / 1000);
    this.core.log.info({ sandbox: id, reason, note }, "sandbox paused");
    this.core.updateGauges();
  }

  /**
   * Under the lock: writes the sandbox's memory image and stops its runtime. `forFork`: the runtime starts
   * again at once from the image (Forker), so its namespace and rules stay (see SandboxCore.prepareLaunch)
   * and its disk is not synced here: the fork's copy freezes the filesystem, which flushes it.
   */
  checkpoint(id: string, reason: StandbyReason, note: string | null = null, options: CheckpointOptions = {}): Promise<void> {
    return traced("sandbox.hibernate", { "stasis.sandbox.id": id, "stasis.standby.reason": reason }, () => this.checkpointTraced(id, reason, note, options));
  }

  private async checkpointTraced(id: string, reason: StandbyReason, note: string | null, options: CheckpointOptions): Promise<void> {
    const forFork = options.forFork === true;
    const { store, metrics, filesystem } = this.core.deps;
    const record = this.core.record(id);
    if (record.state === "hibernated") return;
    const driver = this.checkpointer(record);
    const live = this.core.live.get(id);
    if ((record.state !== "running" && record.state !== "paused") || !live) throw notRunning(record);
    const log = this.core.log.child({ sandbox: id });
    const started = performance.now();
    // Where a hibernation's time goes, in its log line.
    const lap = stopwatch();
    const phases = { settleMs: 0, checkpointMs: 0, drainMs: 0, syncMs: 0 };
    const wasPaused = record.state === "paused";
    const since = record.standbySince ?? Date.now();
    store.setStandby(id, "hibernating", { since, reason }, record.expiresAt);
    this.core.updateGauges();
    // Foreground commands in flight finish first (within their deadlines, at most a while): their
    // streams end when the channel closes. Then replies: they are matched by id only within one channel.
    const inStep = await traced("hibernate.wait_commands", {}, async () => {
      await this.core.commandsDone(id, HIBERNATE_WAITS_FOR_COMMANDS_MS);
      await live.agent.settled(2_000);
      // Whether the agent has read all that was sent (a frozen one answers nothing: it must be quiet).
      return wasPaused ? live.agent.quiet : live.agent.inStep(CHANNEL_IN_STEP_WAIT_MS);
    });
    // The sandbox's stack must see the resets: a paused one thaws for them (the checkpoint thaws it anyway).
    const thawedForResets = wasPaused && (this.core.deps.inbound?.count(id) ?? 0) > 0;
    if (thawedForResets) await this.pausable(record).resume(this.core.ref(id));
    const reset = (await this.core.deps.inbound?.resetAll(id)) ?? 0;
    if (reset > 0) log.info({ connections: reset }, "ended the connections into the sandbox before its checkpoint");
    this.core.live.delete(id);
    const image = this.image(id);
    const ref = this.core.ref(id);
    phases.settleMs = lap();
    try {
      image.noteChannelInStep(inStep);
      await traced("hibernate.checkpoint", { "stasis.runtime": record.runtime }, () => driver.checkpoint(ref, image));
    } catch (err) {
      // A host that cannot be read is taken as alive: a wrong "dead" would give up a live sandbox.
      const alive = (await driver.observe(ref).catch(() => "running")) !== "stopped";
      log.error({ err: (err as Error).message, alive }, "checkpoint failed");
      if (alive && !live.agent.closed) {
        // The driver left it as it was: paused or running (paused again if it was thawed for the resets).
        if (thawedForResets) await this.pausable(record).pause(this.core.ref(id)).catch(() => {});
        this.core.live.set(id, live);
        if (wasPaused) store.setStandby(id, "paused", { since, reason: record.standbyReason ?? reason }, record.expiresAt, record.stateReason);
        else store.setStandby(id, "running", null, record.expiresAt, `hibernation failed: ${(err as Error).message}`.slice(0, 4000));
        throw new ApiError("sandbox_failed", `hibernation failed; the sandbox is still ${wasPaused ? "paused" : "running"}: ${(err as Error).message}`);
      }
      live.agent.close("hibernation failed");
      await this.core.fail(record, `hibernation failed and the sandbox did not survive it: ${(err as Error).message}; its files are kept`);
      throw new ApiError("sandbox_failed", `hibernation failed: ${(err as Error).message}`);
    } finally {
      this.core.updateGauges();
    }
    crashPoint("hibernate.written");
    phases.checkpointMs = lap();
    // The runtime is gone: read what the agent wrote before the checkpoint, then let the channel go.
    await live.agent.drained(500);
    phases.drainMs = lap();
    live.agent.removeAllListeners("closed");
    live.agent.close("sandbox hibernated");
    if (!forFork) await traced("hibernate.sync_disk", {}, () => filesystem.sync(id));
    phases.syncMs = lap();
    image.commit();
    // A hibernated sandbox keeps its namespace and rules for a while (StandbySweeper ends that): a wake
    // soon after then only gives its address back (SandboxNetworks.reattach). Not past a daemon's stop.
    const keepNetwork = forFork || (!options.leaveNetwork && Date.now() - since < this.core.deps.config.hibernatedNetworkKeepMs);
    if (!keepNetwork) await traced("hibernate.leave_network", {}, () => this.core.leaveNetwork(record));
    store.setStandby(id, "hibernated", { since, reason }, record.expiresAt, note ?? (wasPaused ? record.stateReason : null));
    const ms = performance.now() - started;
    metrics.standbyTransition.observe({ op: "hibernate" }, ms / 1000);
    log.info({ ms: Math.round(ms), ...phases, reason, note }, "sandbox hibernated");
    this.core.updateGauges();
  }

  /** Under the lock: brings a sandbox in standby back to running. */
  async wake(id: string): Promise<void> {
    const record = this.core.record(id);
    if (record.state === "running") return;
    const from = { "stasis.sandbox.id": id, "stasis.runtime": record.runtime, "stasis.wake.from": record.state };
    if (record.state === "paused") return traced("sandbox.wake", from, () => this.thaw(record));
    if (record.state === "hibernated") return traced("sandbox.wake", from, () => this.booter.restoreFrom(record, this.image(id), "resume"));
    throw notRunning(record);
  }

  private async thaw(record: SandboxRecord): Promise<void> {
    const live = this.core.live.get(record.id);
    if (!live) throw notRunning(record);
    const started = performance.now();
    await this.pausable(record).resume(this.core.ref(record.id));
    crashPoint("resume.thawed");
    this.core.deps.store.setStandby(record.id, "running", null, wokenExpiry(record, Date.now()));
    this.core.touch(record.id);
    this.core.updateGauges();
    // An agent reattached while frozen has not been heard from yet.
    if (!live.agent.version) await live.agent.waitReady(5_000);
    this.core.deps.metrics.standbyTransition.observe({ op: "thaw" }, (performance.now() - started) / 1000);
  }
}
