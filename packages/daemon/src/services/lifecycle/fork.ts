import { newPreviewToken } from "./network-files.js";
import type { Sandbox, StandbyReason } from "@stasis/protocol";
import type { CheckpointImage } from "../../runtime/checkpoint-image.js";
import type { SandboxLaunchSpec } from "../../runtime/driver.js";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import type { Booter } from "./boot.js";
import { asApiError, isAwakeOrAsleep, newSandboxId, notRunning, toSandbox } from "./records.js";
import type { SandboxCore } from "./sandbox-core.js";
import type { Standby } from "./standby.js";
import { stopwatch } from "./stopwatch.js";

/**
 * Fork: `count` independent sandboxes from the source's current memory, processes and files. The source
 * is checkpointed, its disk copied while frozen, and the source and every clone restored side by side from
 * the one image; the source carries on from exactly where it was (a pause of one restore's length).
 */
export class Forker {
  constructor(
    private readonly core: SandboxCore,
    private readonly booter: Booter,
    private readonly standby: Standby,
  ) {}

  /** Under the source's lock. */
  async fork(id: string, count: number): Promise<Sandbox[]> {
    const { store, filesystem, templates, metrics } = this.core.deps;
    const source = this.core.record(id);
    this.core.usableDriver(source.runtime);
    this.standby.checkpointer(source, "be forked");
    if (!isAwakeOrAsleep(source.state)) throw notRunning(source);
    this.core.checkCapacity(count);
    const started = performance.now();
    // Where a fork's time goes, in its log line.
    const lap = stopwatch();
    const phases = { checkpointMs: 0, copyMs: 0, networkMs: 0, restoreMs: 0 };
    const wasState = source.state;
    const wasReason = source.standbyReason;
    // The source's namespace and rules stay for its restore below: only the clones' networks are made.
    if (wasState !== "hibernated") await this.standby.checkpoint(id, "requested", null, { forFork: true });
    phases.checkpointMs = lap();
    const image = this.standby.image(id);
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
      // Its own address (given at its first start), the source's policy and placeholders.
      network: source.network ? { ...source.network, address: null, previewToken: newPreviewToken(), sentBytes: 0, receivedBytes: 0 } : null,
    }));
    for (const clone of clones) store.insert(clone);
    this.core.updateGauges();
    const log = this.core.log.child({ sandbox: id });
    const owner = this.core.ownerOf(source);
    // Every network before the restores, side by side (set up while another's `runsc restore` holds the
    // cores, each took twice as long), and while the disks are copied: neither needs the other. A failed
    // one fails its own restore below.
    const launches = new Map([
      ...(wasState === "hibernated" ? [] : [[id, this.booter.prepareLaunch(this.core.record(id), { keptNetwork: true })] as const]),
      ...clones.map((r) => [r.id, this.booter.prepareLaunch(r)] as const),
    ]);
    let copied = false;
    try {
      await filesystem.clone(id, clones.map((c) => c.id), await templates.rootfs(source.template, owner), owner);
      copied = true;
    } finally {
      // Without disks there is nothing to restore the clones onto; the source goes back at once.
      if (!copied) {
        await Promise.allSettled(launches.values());
        await Promise.all(clones.map((c) => this.core.discard(c, "cleanup after a failed fork")));
        await this.returnSource(id, wasState, wasReason, image, launches.get(id)).finally(() => this.dropSharedImage(id, wasState, image));
      }
    }
    phases.copyMs = lap();
    await Promise.allSettled(launches.values());
    phases.networkMs = lap();
    // The source and its clones come back from the one image side by side, each under its own container.
    const [sourceBack, ...results] = await Promise.allSettled([
      this.returnSource(id, wasState, wasReason, image, launches.get(id)),
      ...clones.map((clone) => this.booter.restoreFrom(clone, image, "fork", { launch: launches.get(clone.id)! })),
    ]);
    phases.restoreMs = lap();
    this.dropSharedImage(id, wasState, image);
    if (sourceBack?.status === "rejected") {
      log.error({ err: (sourceBack.reason as Error).message }, "the source did not come back after the fork; it stays hibernated");
      await this.core.leaveNetwork(this.core.record(id));
    }
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure) {
      await Promise.all(clones.map((c) => this.core.discard(c, "cleanup after a failed fork")));
      throw asApiError(failure.reason, "fork failed");
    }
    const ms = performance.now() - started;
    log.info({ clones: clones.map((c) => c.id), ms: Math.round(ms), ...phases }, "sandbox forked");
    metrics.standbyTransition.observe({ op: "fork" }, ms / 1000);
    return clones.map((c) => toSandbox(this.core.record(c.id)));
  }

  /** After a fork: the source goes back to the state it was in. */
  private async returnSource(id: string, wasState: SandboxRecord["state"], wasReason: StandbyReason | null, image: CheckpointImage, launch?: Promise<SandboxLaunchSpec>): Promise<void> {
    if (wasState === "hibernated") return;
    await this.booter.restoreFrom(this.core.record(id), image, "resume", { keepImage: true, ...(launch ? { launch } : {}) });
    if (wasState === "paused") await this.standby.freeze(id, wasReason ?? "requested");
  }

  /** The image taken for a fork is the source's own only while the source is hibernated. */
  private dropSharedImage(id: string, wasState: SandboxRecord["state"], image: CheckpointImage): void {
    if (wasState !== "hibernated" && this.core.deps.store.get(id)?.state !== "hibernated") image.discard();
  }
}
