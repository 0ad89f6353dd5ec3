import { mkdirSync, rmSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { CreateSandboxRequestSchema, type Runtime } from "@stasis/protocol";
import { ApiError } from "../../errors/api-error.js";
import { canCheckpoint } from "../../runtime/driver.js";
import { startTemplateCommand, warmUp } from "./agent-tasks.js";
import type { Booter } from "./boot.js";
import type { SandboxCore } from "./sandbox-core.js";
import type { Standby } from "./standby.js";

/**
 * What templates need of the lifecycle: snapshots of a version (booted hidden, checkpointed), the
 * sandboxes that use a version, holds while a version is deleted, and command defaults.
 */
export class TemplateSnapshots {
  private readonly defaultsCache = new Map<string, { cwd: string | null; user: string | null }>();

  constructor(
    private readonly core: SandboxCore,
    private readonly booter: Booter,
    private readonly standby: Standby,
  ) {}

  /** The runtime that takes snapshots: the default one if it can checkpoint, else any that can. */
  private snapshotRuntime(): Runtime | null {
    const usable = [...this.core.deps.drivers].filter(([name, d]) => canCheckpoint(d) && this.core.probeOf(name)?.available);
    const preferred = usable.find(([name]) => name === this.core.deps.config.defaultRuntime) ?? usable[0];
    return preferred ? preferred[0] : null;
  }

  canSnapshot(): boolean {
    return this.snapshotRuntime() !== null;
  }

  /**
   * Takes a template version's snapshot: boots it (hidden), runs its start command until ready, lets the
   * agent settle, checkpoints it, and keeps the memory image and the disk as the version's snapshot.
   */
  async take(ref: string, signal: AbortSignal): Promise<{ memoryBytes: number; diskBytes: number; runtime: string }> {
    const { store, templates, filesystem } = this.core.deps;
    const template = templates.resolve(ref, { allowBuilding: true });
    const runtime = this.snapshotRuntime();
    if (!runtime) throw new ApiError("not_supported_by_runtime", "snapshots need a runtime with checkpoint (gvisor)");
    const driver = this.core.usableDriver(runtime);
    const shape = this.booter.shapeOf({}, { ...template, snapshot: null }, runtime);
    const record = this.booter.newRecord(CreateSandboxRequestSchema.parse({ template: ref }), shape, Date.now(), true);
    const log = this.core.log.child({ sandbox: record.id, snapshotOf: ref });
    this.core.snapshotting.add(record.id);
    store.insert(record);
    try {
      const agent = await this.booter.boot(record, driver, log);
      await startTemplateCommand(record, agent, template, signal);
      await warmUp(agent);
      if (signal.aborted) throw new ApiError("sandbox_failed", "the build was cancelled");
      await this.core.exclusive(record.id, () => this.standby.checkpoint(record.id, "requested"));
      const [name = "", version = ""] = ref.split(":");
      const dir = templates.snapshotDir(name, Number(version));
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const paths = filesystem.paths(record.id);
      await filesystem.unmount(record.id);
      const image = this.standby.image(record.id).moveTo(join(dir, "image"));
      renameSync(paths.diskImage, join(dir, "disk.img"));
      log.info("template snapshot taken");
      return { memoryBytes: image.bytes(), diskBytes: statSync(join(dir, "disk.img")).blocks * 512, runtime: this.booter.snapshotFormat(runtime) ?? "unknown" };
    } finally {
      await this.core.teardown(record).catch((err: Error) => log.warn({ err: err.message }, "removing the snapshot's sandbox failed"));
      store.delete(record.id);
      this.core.snapshotting.delete(record.id);
    }
  }

  /**
   * Marks template versions as being deleted until `release` is called: creates and pool claims refuse
   * them and pools stop refilling them, so the caller's check for users stays true until it removes them.
   */
  holdForDelete(refs: string[]): () => void {
    const deleting = this.core.deletingTemplates;
    const mine = refs.filter((r) => !deleting.has(r));
    for (const r of mine) deleting.add(r);
    return () => {
      for (const r of mine) {
        deleting.delete(r);
        this.defaultsCache.delete(r);
      }
    };
  }

  /** Sandboxes (pool members included) made from any of `refs`, which must go before the template can. */
  usersOf(refs: string[]): { id: string; state: string; pooled: boolean }[] {
    const wanted = new Set(refs);
    return this.core.deps.store
      .live()
      .filter((r) => wanted.has(r.template))
      .map((r) => ({ id: r.id, state: r.state, pooled: r.pooled }));
  }

  /** Default cwd and user of commands in sandboxes of `ref` (cached: read on every command). */
  commandDefaults(ref: string): { cwd: string | null; user: string | null } {
    let d = this.defaultsCache.get(ref);
    if (!d) {
      try {
        const t = this.core.deps.templates.resolve(ref, { allowBuilding: true });
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
}
