import type { SandboxRecord } from "../../store/sandbox-store.js";
import { forEachLimited } from "./records.js";
import type { SandboxCore } from "./sandbox-core.js";
import type { Standby } from "./standby.js";
import type { WarmPools } from "./warm-pools.js";

const SWEEP_MS = 1_000;

/**
 * Each second: lifetimes that ended, idle sandboxes to pause, long-paused ones to hibernate, the networks
 * of long-hibernated ones to end, and the warm pools' refills. Everything it sees is re-checked under the
 * sandbox's lock before it acts.
 */
export class StandbySweeper {
  private timer: NodeJS.Timeout | null = null;
  private sweeping = false;

  constructor(
    private readonly core: SandboxCore,
    private readonly standby: Standby,
    private readonly pools: WarmPools,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = Date.now();
      const toHibernate: SandboxRecord[] = [];
      const keepMs = this.core.deps.config.hibernatedNetworkKeepMs;
      for (const record of this.core.deps.store.live()) {
        if (this.core.isLocked(record.id)) continue;
        if (record.state === "running" && this.core.live.has(record.id)) {
          if (record.expiresAt !== null && record.expiresAt <= now) {
            await this.lifetimeReached(record);
            continue;
          }
          const a = this.core.activityOf(record.id) ?? this.core.touch(record.id);
          if (record.idleTimeoutMs > 0 && a.holds === 0 && now - a.lastAt >= record.idleTimeoutMs) {
            await this.core.exclusive(record.id, () => this.autoStandby(record.id, "idle")).catch((err: Error) =>
              this.core.log.error({ sandbox: record.id, err: err.message }, "automatic pause failed"),
            );
          }
        } else if (
          record.state === "paused" &&
          record.hibernateAfterMs > 0 &&
          record.standbySince !== null &&
          now - record.standbySince >= record.hibernateAfterMs &&
          this.standby.canHibernate(record)
        ) {
          toHibernate.push(record);
        } else if (record.state === "hibernated" && record.standbySince !== null && now - record.standbySince >= keepMs && this.core.deps.network?.attached(record.id)) {
          await this.core.exclusive(record.id, () => this.endKeptNetwork(record.id)).catch((err: Error) =>
            this.core.log.error({ sandbox: record.id, err: err.message }, "removing a hibernated sandbox's network failed"),
          );
        }
      }
      void this.pools.fill();
      await forEachLimited(toHibernate, this.core.deps.config.hibernateParallelism, (record) =>
        this.core.exclusive(record.id, () => this.autoStandby(record.id, "hibernate")).catch((err: Error) =>
          this.core.log.error({ sandbox: record.id, err: err.message }, "automatic hibernation failed"),
        ),
      );
    } catch (err) {
      this.core.log.error({ err }, "standby sweep failed");
    } finally {
      this.sweeping = false;
    }
  }

  /** Under the lock, re-checking what the sweep saw: a request may have arrived since. */
  private async autoStandby(id: string, step: "idle" | "hibernate"): Promise<void> {
    const record = this.core.deps.store.get(id);
    const a = this.core.activityOf(id);
    if (!record) return;
    const now = Date.now();
    if (step === "idle") {
      if (record.state !== "running" || record.idleTimeoutMs <= 0 || (a && (a.holds > 0 || now - a.lastAt < record.idleTimeoutMs))) return;
      await this.standby.freeze(id, "idle", `idle for ${Math.round((now - (a?.lastAt ?? now)) / 1000)} s`);
    } else {
      if (record.state !== "paused" || record.standbySince === null || now - record.standbySince < record.hibernateAfterMs) return;
      // Hibernating keeps the reason it went to sleep for.
      await this.standby.checkpoint(id, record.standbyReason ?? "idle", `paused for ${Math.round((now - record.standbySince) / 1000)} s`);
    }
  }

  /** Under the lock: a sandbox hibernated for a while gives up the namespace and rules it kept (Standby.checkpoint). */
  private async endKeptNetwork(id: string): Promise<void> {
    const record = this.core.deps.store.get(id);
    if (record?.state !== "hibernated" || !this.core.deps.network?.attached(id)) return;
    await this.core.leaveNetwork(record);
  }

  private async lifetimeReached(record: SandboxRecord): Promise<void> {
    const log = this.core.log.child({ sandbox: record.id });
    const { store } = this.core.deps;
    const why = `lifetime of ${record.timeoutMs} ms reached`;
    await this.core
      .exclusive(record.id, async () => {
        const current = store.get(record.id);
        if (!current || current.state !== "running" || current.expiresAt === null || current.expiresAt > Date.now()) return;
        if (current.onTimeout === "standby") {
          log.info(`${why}; going into standby`);
          await this.standby.freeze(record.id, "lifetime", why);
          return;
        }
        log.info(`${why}; stopping`);
        store.setState(record.id, "stopping");
        try {
          await this.core.teardown(current);
          store.setState(record.id, "stopped", why);
        } catch (err) {
          log.error({ err }, "stopping an expired sandbox failed");
          store.setState(record.id, "failed", `lifetime reached, but stopping it failed: ${(err as Error).message}`);
        }
      })
      .catch((err: Error) => log.error({ err: err.message }, "handling the end of a lifetime failed"));
    this.core.updateGauges();
  }
}
