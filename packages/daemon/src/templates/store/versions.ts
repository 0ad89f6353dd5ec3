// Versions of user templates (`<root>/<name>/v<version>/template.json`), built-in manifests, and refs.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { builtinRecipes } from "../template-recipes.js";
import { isBuiltinName, REF, TemplateNotFoundError, type TemplateManifest, type TemplateVersionManifest } from "./manifests.js";

/** What a ref names: a built-in template, or one version of a user template. */
export type FoundTemplate = { builtin: TemplateManifest } | { version: TemplateVersionManifest };

export class VersionStore {
  constructor(private readonly root: string) {}

  dir(name: string): string {
    return join(this.root, name);
  }

  /** Manifest of a built-in template (base), built by `stasis template build --builtin`. */
  manifest(name: string): TemplateManifest | null {
    if (!builtinRecipes[name]) return null;
    try {
      return JSON.parse(readFileSync(join(this.dir(name), "template.json"), "utf8")) as TemplateManifest;
    } catch {
      return null;
    }
  }

  versionDir(name: string, version: number): string {
    return join(this.root, name, `v${version}`);
  }

  /** Every version of `name` on disk, building ones included, newest first. */
  versions(name: string): TemplateVersionManifest[] {
    const dir = this.dir(name);
    if (isBuiltinName(name) || !existsSync(dir)) return [];
    const out: TemplateVersionManifest[] = [];
    for (const entry of readdirSync(dir)) {
      if (!/^v[1-9][0-9]*$/.test(entry)) continue;
      try {
        out.push(JSON.parse(readFileSync(join(dir, entry, "template.json"), "utf8")) as TemplateVersionManifest);
      } catch {
        // A version whose manifest was never written: a build that died before its first layer.
      }
    }
    return out.sort((a, b) => b.version - a.version);
  }

  names(): string[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root).filter((n) => REF.test(n) && !isBuiltinName(n));
  }

  /**
   * The number the next build of `name` gets. Numbers are never reused, even once every version of the
   * name is deleted (clients pin `name:N`, the daemon caches per ref): above both the versions on disk and
   * the high-water mark that `remove` leaves. The disk is read first: a remove elsewhere records the
   * number before it takes the folder away, so one of the two reads sees it.
   */
  nextVersion(name: string): number {
    const dir = this.dir(name);
    const used = existsSync(dir) ? readdirSync(dir).map((e) => /^v([1-9][0-9]*)$/.exec(e)?.[1]).filter((v): v is string => v !== undefined).map(Number) : [];
    return Math.max(0, ...used, this.highWater(name)) + 1;
  }

  /** Claims the next number of `name` by creating its folder (the lock, also between daemons) and records it. */
  claimVersion(name: string): number {
    for (;;) {
      const version = this.nextVersion(name);
      mkdirSync(this.dir(name), { recursive: true, mode: 0o700 });
      try {
        mkdirSync(this.versionDir(name, version));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        continue;
      }
      // Taken, finished and deleted by another daemon between our read and our mkdir: not ours to reuse.
      if (this.highWater(name) >= version) {
        rmdirSync(this.versionDir(name, version));
        continue;
      }
      this.recordVersion(name, version);
      return version;
    }
  }

  /**
   * The highest number `name` ever had, as recorded: one empty file `<root>/.versions/<name>/<N>` per
   * record, so concurrent records (two daemons) never lose the higher one as a rewritten file could.
   */
  private highWater(name: string): number {
    try {
      return Math.max(0, ...readdirSync(join(this.root, ".versions", name)).filter((e) => /^[1-9][0-9]*$/.test(e)).map(Number));
    } catch {
      return 0;
    }
  }

  /** Records that `name` had `version`: before its folder goes, so the number is never reused. */
  recordVersion(name: string, version: number): void {
    if (this.highWater(name) >= version) return;
    const dir = join(this.root, ".versions", name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, String(version)), "");
    // Lower marks are redundant; the highest one present is never removed by anyone.
    for (const e of readdirSync(dir)) if (Number(e) < version) rmSync(join(dir, e), { force: true });
  }

  writeVersion(manifest: TemplateVersionManifest): void {
    const dir = this.versionDir(manifest.name, manifest.version);
    mkdirSync(dir, { recursive: true });
    // The name's folder may have been made by a claim elsewhere with the umask's mode.
    chmodSync(this.dir(manifest.name), 0o700);
    this.recordVersion(manifest.name, manifest.version);
    const tmp = join(dir, `template.json.tmp-${process.pid}`);
    writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
    renameSync(tmp, join(dir, "template.json"));
  }

  /** Where a version's snapshot lives: `image/` (the checkpoint) and `disk.img` (its writable disk). */
  snapshotDir(name: string, version: number): string {
    return join(this.versionDir(name, version), "snapshot");
  }

  /** What `ref` names: a bare name resolves to its latest ready version; a building one only by exact ref, if allowed. */
  find(ref: string, allowBuilding: boolean): FoundTemplate {
    const m = REF.exec(ref);
    if (!m?.[1]) throw new TemplateNotFoundError(`'${ref}' is not a template name`);
    const name = m[1];
    const wanted = m[2] ? Number(m[2]) : null;
    if (isBuiltinName(name)) {
      const builtin = this.manifest(name);
      if (!builtin || (wanted !== null && wanted !== 1)) throw new TemplateNotFoundError(`template '${ref}' is not built: run \`stasis template build --builtin ${name}\``);
      return { builtin };
    }
    const versions = this.versions(name).filter((v) => v.status === "ready" || (allowBuilding && wanted !== null));
    const version = wanted === null ? versions[0] : versions.find((v) => v.version === wanted);
    if (!version) {
      const known = this.versions(name).filter((v) => v.status === "ready").map((v) => v.version);
      throw new TemplateNotFoundError(
        known.length > 0 ? `template '${name}' has no version ${wanted} (versions: ${known.join(", ")})` : `no template '${name}': build it with \`stasis template build --name ${name}\``,
      );
    }
    return { version };
  }
}
