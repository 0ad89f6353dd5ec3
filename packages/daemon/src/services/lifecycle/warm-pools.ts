import { newPreviewToken } from "./network-files.js";
import { CreateSandboxRequestSchema, type CreateSandboxParams, type Sandbox } from "@stasis/protocol";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import type { ResolvedTemplate } from "../../templates/template-store.js";
import { pageIn, warmUp } from "./agent-tasks.js";
import type { Booter } from "./boot.js";
import { hasMemoryFor, hasShape, isLiveMember, toSandbox, type SandboxShape } from "./records.js";
import type { SandboxCore } from "./sandbox-core.js";
import type { Standby } from "./standby.js";
import { trace } from "@opentelemetry/api";
import { failSpan, traced } from "../../observability/tracing.js";

type PoolTargets = Map<string, { size: number; template: ResolvedTemplate }>;

/**
 * Warm pools: members booted ahead of any request and kept frozen (records with `pooled = 1`, hidden from
 * lists and capacity). A create whose shape matches claims one under its lock instead of booting.
 */
export class WarmPools {
  /** Members being claimed, so two creates never take the same one. */
  private readonly claiming = new Set<string>();
  private filling = false;
  /** Set on a stop: no more refills. */
  private closed = false;

  constructor(
    private readonly core: SandboxCore,
    private readonly booter: Booter,
    private readonly standby: Standby,
  ) {}

  private members(): SandboxRecord[] {
    return this.core.deps.store.pooled().filter((m) => !this.core.snapshotting.has(m.id));
  }

  /**
   * Takes a frozen member of the template's warm pool whose shape (runtime, cpu, memory, disk) matches
   * the request and makes it the requester's: thaw, its settings, a fresh lifetime. Null when none.
   */
  async claim(shape: SandboxShape, params: CreateSandboxParams): Promise<Sandbox | null> {
    if (this.core.deletingTemplates.has(shape.template.ref) || !this.targets().has(shape.template.ref)) return null;
    const fits = (r: SandboxRecord) => r.state === "paused" && hasShape(r, shape);
    for (const member of this.members().filter(fits)) {
      if (this.claiming.has(member.id)) continue;
      this.claiming.add(member.id);
      try {
        const claimed = await this.core.exclusive(member.id, () => this.takeOver(member.id, params, shape));
        if (claimed) return claimed;
      } catch (err) {
        this.core.log.warn({ sandbox: member.id, err: (err as Error).message }, "a warm-pool member could not be claimed; discarded, trying the next");
        await this.core.discard(member, "discarding a warm-pool member");
      } finally {
        this.claiming.delete(member.id);
      }
    }
    return null;
  }

  /** Under the member's lock. */
  private async takeOver(id: string, params: CreateSandboxParams, shape: SandboxShape): Promise<Sandbox | null> {
    const env = shape.env;
    const member = this.core.deps.store.get(id);
    const live = this.core.live.get(id);
    if (!member?.pooled || member.state !== "paused" || !live || this.core.deletingTemplates.has(member.template)) return null;
    await this.standby.pausable(member).resume(this.core.ref(id));
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
      // The member's address, the requester's policy.
      network: member.network ? { ...member.network, policy: this.core.policyFor(params.network, shape.template), previewToken: newPreviewToken() } : member.network,
    };
    if (claimed.network) await this.core.deps.network?.update(id, claimed.network);
    this.core.deps.store.claim(claimed);
    this.core.live.set(id, { record: claimed, agent: live.agent });
    this.core.touch(id);
    // The spare shell follows the sandbox's env (kept as is when the env is the pool's, which is empty).
    live.agent.prewarm({ env: claimed.env, user: "root" }).catch(() => {});
    this.core.updateGauges();
    return toSandbox(claimed);
  }

  /**
   * Keeps each configured warm pool at its size: one member booted at a time, frozen once ready, only while
   * the host keeps enough memory free. Dead members, and members no pool wants any more, are discarded.
   */
  async fill(): Promise<void> {
    if (this.filling || this.closed) return;
    let members = this.members();
    const targets = this.targets();
    // Nothing configured and nothing left from an earlier configuration: the common case.
    if (members.length === 0 && targets.size === 0) return;
    this.filling = true;
    try {
      const runtime = this.core.deps.config.defaultRuntime;
      for (const ref of this.core.deletingTemplates) targets.delete(ref);
      const shapes = new Map([...targets].map(([ref, { template }]) => [ref, this.booter.shapeOf({}, template, runtime)]));
      // A member of the shape its pool now hands out (the template's resources may have changed since).
      const fitsPool = (r: SandboxRecord) => {
        const want = shapes.get(r.template);
        return want !== undefined && isLiveMember(r) && hasShape(r, want);
      };
      const kept = new Map<string, number>();
      for (const member of members) {
        const n = (kept.get(member.template) ?? 0) + 1;
        if (fitsPool(member) && n <= (targets.get(member.template)?.size ?? 0)) kept.set(member.template, n);
        else if (!this.claiming.has(member.id) && !this.core.isLocked(member.id) && member.state !== "creating") await this.core.discard(member, "discarding a warm-pool member");
      }
      members = this.core.deps.store.pooled();
      for (const [ref, { size }] of targets) {
        const have = members.filter((r) => r.template === ref && fitsPool(r)).length;
        this.core.deps.metrics.warmPool.set({ template: ref }, have);
        if (have >= size || !this.core.probeOf(runtime)?.available) continue;
        const shape = shapes.get(ref);
        if (!shape) continue;
        if (!hasMemoryFor(shape.memoryMiB)) {
          this.core.log.debug({ template: ref }, "warm pool not refilled: the host is short of memory");
          continue;
        }
        await this.bootMember(shape);
      }
    } catch (err) {
      this.core.log.error({ err }, "refilling the warm pools failed");
    } finally {
      this.filling = false;
    }
  }

  /**
   * Pool sizes by template version: STASIS_WARM_POOL names templates (their latest version) and wins;
   * otherwise the latest version of each template keeps the pool its build asked for.
   */
  targets(): PoolTargets {
    const { config, templates } = this.core.deps;
    const targets: PoolTargets = new Map();
    for (const [name, size] of Object.entries(config.warmPools)) {
      try {
        const template = templates.resolve(name);
        targets.set(template.ref, { size, template });
      } catch {
        // Not built (yet): nothing to keep warm.
      }
    }
    for (const t of templates.pooledTemplates()) {
      if (t.pool > 0 && !Object.hasOwn(config.warmPools, t.name) && !targets.has(t.ref)) targets.set(t.ref, { size: t.pool, template: t });
    }
    return targets;
  }

  /** On a stop: warm-pool members belong to nobody and are rebuilt on the next start, not kept or hibernated. */
  async discardAll(): Promise<void> {
    this.closed = true;
    await Promise.all(this.core.deps.store.pooled().map((member) => this.core.discard(member, "discarding a warm-pool member")));
  }

  /** Discards the members of `refs` (before their template is deleted). */
  async discardOf(refs: string[]): Promise<void> {
    const wanted = new Set(refs);
    await Promise.all(
      this.members()
        .filter((m) => wanted.has(m.template))
        .map((m) =>
          this.core.exclusive(m.id, async () => {
            // A create may have claimed it while this waited for the lock: it is the create's now.
            const current = this.core.deps.store.get(m.id);
            if (current?.pooled) await this.core.discard(current, "discarding a warm-pool member");
          }),
        ),
    );
  }

  /** One span per member (its boot phases are its children), not loose spans with no create above them. */
  private bootMember(shape: SandboxShape): Promise<void> {
    const record = this.booter.newRecord(CreateSandboxRequestSchema.parse({ template: shape.template.ref }), shape, Date.now(), true);
    const attributes = { "stasis.sandbox.id": record.id, "stasis.runtime": shape.runtime, "stasis.template": shape.template.ref, "stasis.created_via": record.createdVia };
    return traced("warm_pool.boot", attributes, () => this.bootRecord(record, shape));
  }

  private async bootRecord(record: SandboxRecord, shape: SandboxShape): Promise<void> {
    const log = this.core.log.child({ sandbox: record.id, runtime: shape.runtime, pool: shape.template.ref });
    this.core.deps.store.insert(record);
    try {
      await this.booter.materialize(record, shape, this.core.usableDriver(shape.runtime), log);
      const live = this.core.live.get(record.id);
      if (!live) throw new Error("the member's agent went away");
      await warmUp(live.agent);
      if (record.createdVia === "snapshot") await pageIn(record, live.agent, shape.template);
      // Frozen until claimed: no CPU while it waits, memory and the agent's spare shell kept.
      await this.core.exclusive(record.id, () => this.standby.freeze(record.id, "requested"));
      log.info("warm-pool member ready");
    } catch (err) {
      log.warn({ err: (err as Error).message }, "warm-pool member failed to boot");
      const span = trace.getActiveSpan();
      if (span) failSpan(span, err);
      await this.core.discard(record, "discarding a warm-pool member");
    }
  }

  /** Each configured warm pool: its size, members ready (frozen) and booting. */
  status(): { template: string; size: number; ready: number; booting: number }[] {
    const members = this.members();
    return [...this.targets()].map(([template, { size }]) => ({
      template,
      size,
      ready: members.filter((r) => r.template === template && r.state === "paused").length,
      booting: members.filter((r) => r.template === template && (r.state === "creating" || r.state === "running")).length,
    }));
  }
}
