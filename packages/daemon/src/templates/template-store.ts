import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NetworkPolicy, Template, TemplateResources } from "@stasis/protocol";
import { runCommand } from "../runtime/run-command.js";
import { LayerStore } from "./store/layers.js";
import {
  builtinTemplate,
  DEFAULT_RESOURCES,
  isBuiltinName,
  recipeHash,
  REF,
  TemplateNotFoundError,
  TemplateSettingsError,
  toTemplate,
  type ProgressFn,
  type ResolvedTemplate,
  type TemplateManifest,
  type TemplateVersionManifest,
} from "./store/manifests.js";
import { LayerPins } from "./store/pins.js";
import { runLogged } from "./store/run-logged.js";
import { ShiftedCopies } from "./store/shifted-copies.js";
import { cleanupStale } from "./store/stale-cleanup.js";
import { Trash } from "./store/trash.js";
import { VersionStore } from "./store/versions.js";
import { builtinRecipes } from "./template-recipes.js";

export {
  DEFAULT_RESOURCES,
  MAX_LAYERS,
  recipeHash,
  TemplateNotFoundError,
  TemplateSettingsError,
  type ProgressFn,
  type ResolvedTemplate,
  type TemplateManifest,
  type TemplateVersionManifest,
} from "./store/manifests.js";

/** Folders under the root that only root may enter (see `securePermissions`). */
const PRIVATE_DIRS = [".layers", ".trash", ".pins", ".versions", ".builds"];

/**
 * Templates are read-only root filesystems, built once and shared by every sandbox through an overlay.
 * Layout: <root>/<name>/rootfs, <root>/<name>/template.json, and for user-namespaced runtimes a copy with
 * every owner shifted into the namespace's host range: <root>/<name>/rootfs-uid<base>.
 * User templates are versions (store/versions.ts) of layers (store/layers.ts) under <root>/.layers.
 */
export class TemplateStore {
  private readonly trash: Trash;
  private readonly layers: LayerStore;
  private readonly store: VersionStore;
  private readonly pins: LayerPins;
  private readonly shifted = new ShiftedCopies();

  constructor(private readonly root: string) {
    this.trash = new Trash(root);
    this.layers = new LayerStore(root, this.trash);
    this.store = new VersionStore(root);
    this.pins = new LayerPins(root);
    this.securePermissions();
  }

  /**
   * Layers can hold setuid-root files from imported images and snapshots memory images with secrets: local
   * users may not traverse into them. The root is 0711 (paths below stay reachable by root only where a
   * folder is 0700); the daemon, runsc's gofer and the overlay mounts run as root and are unaffected.
   * Best effort: a non-root `stasis doctor` also makes a store.
   */
  private securePermissions(): void {
    const secure = (dir: string, mode: number) => {
      try {
        mkdirSync(dir, { recursive: true, mode });
        chmodSync(dir, mode); // mkdir's mode is masked by the umask, and existing folders keep theirs
      } catch {
        // Not root (doctor), or a read-only folder: nothing to protect from here.
      }
    };
    secure(this.root, 0o711);
    for (const d of PRIVATE_DIRS) secure(join(this.root, d), 0o700);
    // Per-name folders; only the folders themselves: the built-in base's files keep their modes.
    for (const name of [...this.names(), ...Object.keys(builtinRecipes).filter((n) => existsSync(this.dir(n)))]) secure(this.dir(name), 0o700);
  }

  dir(name: string): string {
    return this.store.dir(name);
  }

  /** Manifest of a built-in template (base), built by `stasis template build --builtin`. */
  manifest(name: string): TemplateManifest | null {
    return this.store.manifest(name);
  }

  /** Built built-in templates. */
  builtins(): TemplateManifest[] {
    return Object.keys(builtinRecipes)
      .map((name) => this.manifest(name))
      .filter((m): m is TemplateManifest => m !== null);
  }

  isBuiltinName(name: string): boolean {
    return isBuiltinName(name);
  }

  // ---- layers (store/layers.ts) and the pins of running builds (store/pins.ts) ----

  layerDir(key: string): string {
    return this.layers.dir(key);
  }

  hasLayer(key: string): boolean {
    return this.layers.has(key);
  }

  commitLayer(key: string, staging: string, info: { sizeBytes: number; step: string }): void {
    this.layers.commit(key, staging, info);
  }

  layerSize(key: string): number {
    return this.layers.size(key);
  }

  stagingDir(key: string): string {
    return this.layers.staging(key);
  }

  pin(id: string, keys: string[]): void {
    this.pins.pin(id, keys);
  }

  unpin(id: string): void {
    this.pins.unpin(id);
  }

  /** Deletes layers that no version on disk lists (building versions included) and no running build pins. */
  async collectLayers(): Promise<void> {
    await this.layers.collect(() => new Set([...this.names().flatMap((n) => this.versions(n).flatMap((v) => v.layers)), ...this.pins.pinnedLayers()]));
  }

  // ---- versions of user templates (store/versions.ts) ----

  versionDir(name: string, version: number): string {
    return this.store.versionDir(name, version);
  }

  versions(name: string): TemplateVersionManifest[] {
    return this.store.versions(name);
  }

  names(): string[] {
    return this.store.names();
  }

  nextVersion(name: string): number {
    return this.store.nextVersion(name);
  }

  claimVersion(name: string): number {
    return this.store.claimVersion(name);
  }

  writeVersion(manifest: TemplateVersionManifest): void {
    this.store.writeVersion(manifest);
  }

  snapshotDir(name: string, version: number): string {
    return this.store.snapshotDir(name, version);
  }

  exists(ref: string): boolean {
    try {
      this.store.find(ref, false);
      return true;
    } catch {
      return false;
    }
  }

  /** What a sandbox of `ref` starts from. A version still building resolves only by its exact ref, for its own snapshot. */
  resolve(ref: string, options: { allowBuilding?: boolean } = {}): ResolvedTemplate {
    const found = this.store.find(ref, options.allowBuilding ?? false);
    if ("builtin" in found) {
      return { ref: found.builtin.name, name: found.builtin.name, builtin: true, env: {}, workdir: null, user: null, start: null, ready: null, readyTimeoutMs: null, resources: DEFAULT_RESOURCES, pool: 0, network: null, snapshot: null };
    }
    const v = found.version;
    const snap = this.snapshotDir(v.name, v.version);
    return {
      ref: `${v.name}:${v.version}`,
      name: v.name,
      builtin: false,
      env: v.env,
      workdir: v.workdir,
      user: v.user,
      start: v.start,
      ready: v.ready,
      readyTimeoutMs: v.readyTimeoutMs,
      resources: v.resources,
      pool: v.pool,
      network: v.network ?? null,
      snapshot: v.snapshot ? { image: join(snap, "image"), disk: join(snap, "disk.img"), runtime: v.snapshot.runtime ?? null } : null,
    };
  }

  /** Overlay lowerdir (top layer first) of a template. */
  lowerdir(ref: string, options: { allowBuilding?: boolean } = {}): string {
    const found = this.store.find(ref, options.allowBuilding ?? true);
    if ("builtin" in found) return join(this.dir(found.builtin.name), "rootfs");
    return [...found.version.layers].reverse().map((key) => join(this.layerDir(key), "diff")).join(":");
  }

  /** The latest ready version of every user template that asks for a warm pool. */
  pooledTemplates(): ResolvedTemplate[] {
    const out: ResolvedTemplate[] = [];
    for (const name of this.names()) {
      const latest = this.versions(name).find((v) => v.status === "ready");
      if (latest && latest.pool > 0) out.push(this.resolve(`${name}:${latest.version}`));
    }
    return out;
  }

  /** The API's view of every ready version, newest first per name; built-ins first. */
  list(): Template[] {
    const out: Template[] = this.builtins().map((b) => builtinTemplate(b));
    for (const name of this.names().sort()) {
      const ready = this.versions(name).filter((v) => v.status === "ready");
      ready.forEach((v, i) => out.push(toTemplate(v, i === 0)));
    }
    return out;
  }

  get(ref: string): Template {
    const found = this.store.find(ref, false);
    if ("builtin" in found) return builtinTemplate(found.builtin);
    return toTemplate(found.version, this.versions(found.version.name).find((v) => v.status === "ready")?.version === found.version.version);
  }

  /** Changes a ready version's pool size or default resources. */
  update(ref: string, change: { pool?: number; resources?: Partial<TemplateResources>; network?: NetworkPolicy | null }): Template {
    const found = this.store.find(ref, false);
    if ("builtin" in found) throw new TemplateNotFoundError(`the built-in template '${found.builtin.name}' has fixed settings; its warm pool is set with STASIS_WARM_POOL`);
    const v = found.version;
    const resources = { ...v.resources, ...change.resources };
    if (v.snapshot && resources.diskMiB !== v.resources.diskMiB) {
      throw new TemplateSettingsError(`a snapshot template's disk is part of its snapshot (${v.resources.diskMiB} MiB); rebuild with another diskMiB`);
    }
    this.writeVersion({ ...v, pool: change.pool ?? v.pool, resources, ...(change.network !== undefined ? { network: change.network } : {}) });
    return this.get(`${v.name}:${v.version}`);
  }

  /**
   * Removes exactly the ready versions `refs` (each `name:version`: the ones the caller checked no sandbox
   * uses; a bare name could meanwhile resolve to a version built since) and the layers no remaining version
   * uses. All refs are checked before anything is removed. A name's folder goes with its last version.
   */
  async remove(refs: string[]): Promise<TemplateVersionManifest[]> {
    const doomed: TemplateVersionManifest[] = [];
    for (const ref of new Set(refs)) {
      const m = REF.exec(ref);
      if (!m?.[1]) throw new TemplateNotFoundError(`'${ref}' is not a template name`);
      if (this.isBuiltinName(m[1])) throw new TemplateSettingsError(`the built-in template '${m[1]}' cannot be deleted`);
      if (!m[2]) throw new TemplateSettingsError(`'${ref}' names no version: delete takes name:version refs`);
      const found = this.store.find(ref, false);
      if ("version" in found) doomed.push(found.version);
    }
    // From here to the first await: one synchronous tick, so no build or create of this daemon interleaves.
    const trashed: string[] = [];
    for (const v of doomed) {
      // Recorded before the folder goes (`nextVersion` reads in the other order): the number is never reused.
      this.store.recordVersion(v.name, v.version);
      // Moved aside in one rename, so a crash mid-delete never leaves a half-deleted version under its name.
      const t = this.trash.move(this.versionDir(v.name, v.version), `${v.name}-v${v.version}`);
      if (t) trashed.push(t);
    }
    for (const name of new Set(doomed.map((v) => v.name))) {
      const dir = this.dir(name);
      // rmdir, not rm: it fails if another daemon has just claimed a version there.
      if (existsSync(dir) && readdirSync(dir).length === 0) {
        try {
          rmdirSync(dir);
        } catch {
          // Claimed meanwhile: the folder stays.
        }
      }
    }
    for (const t of trashed) await this.trash.purge(t);
    if (doomed.length > 0) await this.collectLayers();
    return doomed;
  }

  /** After a crash: see store/stale-cleanup.ts. Run at daemon start, before any build or create. */
  async cleanupStale(): Promise<void> {
    await cleanupStale({ root: this.root, layers: this.layers, versions: this.store, pins: this.pins, trash: this.trash });
  }

  /** The rootfs (overlay lowerdir) for a sandbox whose root is host uid `uidShift` (0 without a user namespace). */
  async rootfs(ref: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    const found = this.store.find(ref, true);
    if ("version" in found) {
      const lower = this.lowerdir(ref);
      if (uidShift === 0) return lower;
      // A user namespace needs every owner shifted: one flattened, shifted copy per version.
      const shifted = join(this.versionDir(found.version.name, found.version.version), `rootfs-uid${uidShift}`);
      return this.shifted.flattened(lower, shifted, uidShift, progress);
    }
    const name = found.builtin.name;
    const plain = join(this.dir(name), "rootfs");
    if (uidShift === 0) return plain;
    const shifted = join(this.dir(name), `rootfs-uid${uidShift}`);
    return this.shifted.copy(plain, shifted, uidShift, progress);
  }

  /** Builds a template from its recipe unless an identical build exists. Idempotent. */
  async build(name: string, options: { force?: boolean; progress?: ProgressFn } = {}): Promise<TemplateManifest> {
    const recipe = builtinRecipes[name];
    if (!recipe) throw new TemplateNotFoundError(`no recipe for template '${name}' (known: ${Object.keys(builtinRecipes).join(", ")})`);
    const hash = recipeHash(recipe);
    const existing = this.manifest(name);
    const progress = options.progress ?? (() => {});
    if (existing && existing.recipeHash === hash && !options.force) {
      progress(`template ${name} is up to date (built ${existing.builtAt})`);
      return existing;
    }
    const dir = this.dir(name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700); // the folder only (see securePermissions)
    const staging = join(dir, "rootfs.building");
    rmSync(staging, { recursive: true, force: true });
    progress(`building template ${name}: debian ${recipe.suite} (${recipe.variant}) + ${recipe.packages.join(", ")}`);
    const args = [
      `--variant=${recipe.variant}`,
      `--include=${recipe.packages.join(",")}`,
      ...recipe.customize.map((hook) => `--customize-hook=${hook}`),
      recipe.suite,
      staging,
      recipe.mirror,
    ];
    await runLogged("mmdebstrap", args, progress);
    // Replace atomically-ish: sandboxes hold the old rootfs open through their overlays, so it is moved
    // aside rather than deleted under them.
    const live = join(dir, "rootfs");
    if (existsSync(live)) renameSync(live, join(dir, `rootfs.old-${Date.now()}`));
    renameSync(staging, live);
    // Shifted copies of the old rootfs may be lower layers of running sandboxes: move them aside too.
    for (const entry of readdirSync(dir)) {
      if (entry.endsWith(".done") && entry.startsWith("rootfs-uid")) rmSync(join(dir, entry), { force: true });
      else if (/^rootfs-uid\d+$/.test(entry)) renameSync(join(dir, entry), join(dir, `${entry}.old-${Date.now()}`));
    }
    const sizeBytes = Number((await runCommand("du", ["-sb", live], { timeoutMs: 120_000 })).stdout.split(/\s/)[0]);
    const manifest: TemplateManifest = { name, recipeHash: hash, builtAt: new Date().toISOString(), sizeBytes };
    writeFileSync(join(dir, "template.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    progress(`template ${name} built: ${(sizeBytes / 1024 / 1024).toFixed(0)} MiB`);
    return manifest;
  }
}
