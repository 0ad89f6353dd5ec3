import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { TemplateNotFoundError, type ResolvedTemplate } from "../../../templates/template-store.js";
import type { TemplateSource } from "../sandbox-core.js";

/** What a test says about a template; the rest is filled in like the built-in `base`. */
export type FakeTemplateSpec = Partial<Omit<ResolvedTemplate, "ref" | "name" | "builtin" | "snapshot">> & { snapshot?: boolean };

const SMALL = { cpu: 1, memoryMiB: 64, diskMiB: 256 };

/**
 * Templates without a template store: `base` (built in) and whatever a test defines as `name:1`. A
 * template with `snapshot: true` resolves to the snapshot TemplateSnapshots.take wrote into snapshotDir.
 */
export class FakeTemplates implements TemplateSource {
  private readonly user = new Map<string, FakeTemplateSpec>();

  constructor(private readonly root: string) {}

  /** Defines (or redefines) the user template `name`, version 1. */
  define(name: string, spec: FakeTemplateSpec): void {
    this.user.set(name, spec);
  }

  resolve(ref: string, _options: { allowBuilding?: boolean } = {}): ResolvedTemplate {
    const name = ref.split(":")[0] ?? ref;
    if (name === "base" && ref === "base") {
      return { ref: "base", name: "base", builtin: true, env: {}, workdir: null, user: null, start: null, ready: null, readyTimeoutMs: null, resources: SMALL, pool: 0, snapshot: null };
    }
    const spec = this.user.get(name);
    if (!spec || (ref !== name && ref !== `${name}:1`)) throw new TemplateNotFoundError(`template '${ref}' not found`);
    const dir = this.snapshotDir(name, 1);
    return {
      ref: `${name}:1`,
      name,
      builtin: false,
      env: spec.env ?? {},
      workdir: spec.workdir ?? null,
      user: spec.user ?? null,
      start: spec.start ?? null,
      ready: spec.ready ?? null,
      readyTimeoutMs: spec.readyTimeoutMs ?? null,
      resources: spec.resources ?? SMALL,
      pool: spec.pool ?? 0,
      snapshot: spec.snapshot ? { image: join(dir, "image"), disk: join(dir, "disk.img"), runtime: "fake 1 agent unpinned" } : null,
    };
  }

  rootfs(ref: string, _uidShift: number, _progress?: (line: string) => void): Promise<string> {
    const dir = join(this.root, ref.replace(":", "-"), "rootfs");
    mkdirSync(dir, { recursive: true });
    return Promise.resolve(dir);
  }

  snapshotDir(name: string, version: number): string {
    return join(this.root, name, `v${version}`, "snapshot");
  }

  pooledTemplates(): ResolvedTemplate[] {
    return [...this.user.entries()].filter(([, spec]) => (spec.pool ?? 0) > 0).map(([name]) => this.resolve(name));
  }
}
