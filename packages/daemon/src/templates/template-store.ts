import { createHash, randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { chmod, lchown, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Template, TemplateResources } from "@stasis/protocol";
import { createInterface } from "node:readline";
import { isAlive, leftByPreviousDaemon, runCommand } from "../runtime/run-command.js";
import { builtinRecipes, type TemplateRecipe } from "./template-recipes.js";

export interface TemplateManifest {
  name: string;
  recipeHash: string;
  builtAt: string;
  sizeBytes: number;
}

export type ProgressFn = (line: string) => void;

export class TemplateNotFoundError extends Error {}

/** Defaults of a sandbox that names no resources, for templates that name none either. */
export const DEFAULT_RESOURCES: TemplateResources = { cpu: 1, memoryMiB: 512, diskMiB: 4096 };

/** One built version of a user template: `<root>/<name>/v<version>/template.json`. */
export interface TemplateVersionManifest {
  name: string;
  version: number;
  /** `building` while its build (or snapshot) runs; only `ready` versions are listed or resolved by name. */
  status: "building" | "ready";
  /** The daemon process running the build, while building: a dead one's leftovers are cleaned up. */
  buildPid?: number;
  source: "spec" | "dockerfile" | "oci";
  from: string | null;
  builtAt: string;
  buildMs: number | null;
  /** Layer keys, bottom first (each `<root>/.layers/<key>/diff`). */
  layers: string[];
  /** Bytes of the layers this version added over the template it was built from. */
  sizeBytes: number;
  /** Hash of everything that went into the build: an identical rebuild is not a new version. */
  buildKey: string;
  env: Record<string, string>;
  workdir: string | null;
  user: string | null;
  start: string | null;
  ready: string | null;
  readyTimeoutMs: number | null;
  resources: TemplateResources;
  pool: number;
  /** `runtime`: the runsc (version, platform) that took it; absent in versions built before it was kept. */
  snapshot: { takenAt: string; memoryBytes: number; diskBytes: number; runtime?: string } | null;
}

/** What creating a sandbox needs to know about the template it names: its version's defaults, and more. */
export interface ResolvedTemplate extends Pick<TemplateVersionManifest, "name" | "env" | "workdir" | "user" | "start" | "ready" | "readyTimeoutMs" | "resources" | "pool"> {
  /** What the sandbox records: `name:version`, or a built-in's bare name. */
  ref: string;
  builtin: boolean;
  /** Checkpoint image and disk of a snapshot template, and the runsc that took it (null: unknown); null otherwise. */
  snapshot: { image: string; disk: string; runtime: string | null } | null;
}

const REF = /^([a-z0-9][a-z0-9._-]{0,62})(?::([1-9][0-9]{0,8}))?$/;
/** Folders under the root that only root may enter (see `securePermissions`). */
const PRIVATE_DIRS = [".layers", ".trash", ".pins", ".versions", ".builds"];
/** Pin files written by this process: one of our pid that is not here is a previous daemon's (same pid after a restart). */
const ownPins = new Set<string>();
/** Overlay options must fit a page: enough for this many layers of `<root>/.layers/<32 hex>/diff`. */
export const MAX_LAYERS = 40;

/**
 * Templates are read-only root filesystems, built once and shared by every sandbox through an overlay.
 * Layout: <root>/<name>/rootfs, <root>/<name>/template.json, and for user-namespaced runtimes a copy with
 * every owner shifted into the namespace's host range: <root>/<name>/rootfs-uid<base>.
 */
export class TemplateStore {
  /** Shifted copies being made: concurrent creates of the first crun sandboxes share one copy. */
  private readonly shifting = new Map<string, Promise<string>>();

  constructor(private readonly root: string) {
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

  /** Built built-in templates. */
  builtins(): TemplateManifest[] {
    return Object.keys(builtinRecipes)
      .map((name) => this.manifest(name))
      .filter((m): m is TemplateManifest => m !== null);
  }

  isBuiltinName(name: string): boolean {
    return Object.hasOwn(builtinRecipes, name);
  }

  // ---- layers: `<root>/.layers/<key>/diff`, complete once `<root>/.layers/<key>/layer.json` exists ----

  layerDir(key: string): string {
    return join(this.root, ".layers", key);
  }

  hasLayer(key: string): boolean {
    return existsSync(join(this.layerDir(key), "layer.json"));
  }

  /** Publishes a finished layer built in `staging` (which holds `diff/`). */
  commitLayer(key: string, staging: string, info: { sizeBytes: number; step: string }): void {
    // layer.json marks a layer complete (`hasLayer`): written last, once diff/ is in place, and published
    // with it by one rename.
    writeFileSync(join(staging, "layer.json"), `${JSON.stringify({ key, ...info, createdAt: new Date().toISOString() })}\n`);
    const dir = this.layerDir(key);
    // An identical layer finished by a concurrent build first: keep that one.
    if (this.hasLayer(key)) {
      rmSync(staging, { recursive: true, force: true });
      return;
    }
    // A folder without layer.json is no layer (a crash mid-write): the new one replaces it.
    const incomplete = existsSync(dir) ? this.moveToTrash(dir, `layer-${key}`) : null;
    if (incomplete) void this.purge(incomplete);
    try {
      renameSync(staging, dir);
    } catch (err) {
      // Another daemon published it between our check and the rename.
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== "EEXIST" && code !== "ENOTEMPTY") || !this.hasLayer(key)) throw err;
      rmSync(staging, { recursive: true, force: true });
    }
  }

  layerSize(key: string): number {
    try {
      return (JSON.parse(readFileSync(join(this.layerDir(key), "layer.json"), "utf8")) as { sizeBytes: number }).sizeBytes;
    } catch {
      return 0;
    }
  }

  /** A fresh staging folder for a layer being built (removed by `cleanupStale` if the daemon dies). */
  stagingDir(key: string): string {
    const dir = join(this.root, ".layers", `${key}.building-${process.pid}-${Date.now().toString(36)}`);
    mkdirSync(join(dir, "diff"), { recursive: true });
    mkdirSync(join(dir, "work"), { recursive: true });
    return dir;
  }

  // ---- versions of user templates: `<root>/<name>/v<version>/template.json` ----

  versionDir(name: string, version: number): string {
    return join(this.root, name, `v${version}`);
  }

  /** Every version of `name` on disk, building ones included, newest first. */
  versions(name: string): TemplateVersionManifest[] {
    const dir = this.dir(name);
    if (this.isBuiltinName(name) || !existsSync(dir)) return [];
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
    return readdirSync(this.root).filter((n) => REF.test(n) && !this.isBuiltinName(n));
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

  private recordVersion(name: string, version: number): void {
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

  private find(ref: string, allowBuilding: boolean): { builtin: TemplateManifest } | { version: TemplateVersionManifest } {
    const m = REF.exec(ref);
    if (!m?.[1]) throw new TemplateNotFoundError(`'${ref}' is not a template name`);
    const name = m[1];
    const wanted = m[2] ? Number(m[2]) : null;
    if (this.isBuiltinName(name)) {
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

  exists(ref: string): boolean {
    try {
      this.find(ref, false);
      return true;
    } catch {
      return false;
    }
  }

  /** What a sandbox of `ref` starts from. A version still building resolves only by its exact ref, for its own snapshot. */
  resolve(ref: string, options: { allowBuilding?: boolean } = {}): ResolvedTemplate {
    const found = this.find(ref, options.allowBuilding ?? false);
    if ("builtin" in found) {
      return { ref: found.builtin.name, name: found.builtin.name, builtin: true, env: {}, workdir: null, user: null, start: null, ready: null, readyTimeoutMs: null, resources: DEFAULT_RESOURCES, pool: 0, snapshot: null };
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
      snapshot: v.snapshot ? { image: join(snap, "image"), disk: join(snap, "disk.img"), runtime: v.snapshot.runtime ?? null } : null,
    };
  }

  /** Overlay lowerdir (top layer first) of a template. */
  lowerdir(ref: string, options: { allowBuilding?: boolean } = {}): string {
    const found = this.find(ref, options.allowBuilding ?? true);
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
    const out: Template[] = this.builtins().map((b) => this.builtinTemplate(b));
    for (const name of this.names().sort()) {
      const ready = this.versions(name).filter((v) => v.status === "ready");
      ready.forEach((v, i) => out.push(toTemplate(v, i === 0)));
    }
    return out;
  }

  get(ref: string): Template {
    const found = this.find(ref, false);
    if ("builtin" in found) return this.builtinTemplate(found.builtin);
    return toTemplate(found.version, this.versions(found.version.name).find((v) => v.status === "ready")?.version === found.version.version);
  }

  private builtinTemplate(b: TemplateManifest): Template {
    return {
      name: b.name,
      version: 1,
      ref: b.name,
      latest: true,
      source: "builtin",
      from: `debian:${builtinRecipes[b.name]?.suite ?? "bookworm"}`,
      builtAt: b.builtAt,
      buildMs: null,
      layers: 1,
      sizeBytes: b.sizeBytes,
      env: {},
      workdir: null,
      user: null,
      start: null,
      ready: null,
      resources: DEFAULT_RESOURCES,
      pool: 0,
      snapshot: null,
    };
  }

  /** Changes a ready version's pool size or default resources. */
  update(ref: string, change: { pool?: number; resources?: Partial<TemplateResources> }): Template {
    const found = this.find(ref, false);
    if ("builtin" in found) throw new TemplateNotFoundError(`the built-in template '${found.builtin.name}' has fixed settings; its warm pool is set with STASIS_WARM_POOL`);
    const v = found.version;
    const resources = { ...v.resources, ...change.resources };
    if (v.snapshot && resources.diskMiB !== v.resources.diskMiB) {
      throw new TemplateSettingsError(`a snapshot template's disk is part of its snapshot (${v.resources.diskMiB} MiB); rebuild with another diskMiB`);
    }
    this.writeVersion({ ...v, pool: change.pool ?? v.pool, resources });
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
      const found = this.find(ref, false);
      if ("version" in found) doomed.push(found.version);
    }
    // From here to the first await: one synchronous tick, so no build or create of this daemon interleaves.
    const trashed: string[] = [];
    for (const v of doomed) {
      // Recorded before the folder goes (`nextVersion` reads in the other order): the number is never reused.
      this.recordVersion(v.name, v.version);
      // Moved aside in one rename, so a crash mid-delete never leaves a half-deleted version under its name.
      const t = this.moveToTrash(this.versionDir(v.name, v.version), `${v.name}-v${v.version}`);
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
    for (const t of trashed) await this.purge(t);
    if (doomed.length > 0) await this.collectLayers();
    return doomed;
  }

  /**
   * Renames `path` into `<root>/.trash/<pid>-<unique>-<label>` (atomic, same filesystem); null if it is
   * gone already. What is in the trash is deleted by `purge`, or by `cleanupStale` after a crash.
   */
  private moveToTrash(path: string, label: string): string | null {
    const trash = join(this.root, ".trash");
    mkdirSync(trash, { recursive: true, mode: 0o700 });
    const target = join(trash, `${process.pid}-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}-${label}`);
    try {
      renameSync(path, target);
      return target;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /**
   * Deletes a folder out of everyone's sight (in the trash, or a dead process's leftover). Unmounts what a
   * crash left mounted below it first (a crun flattened copy's view); leaves it if that fails, and never
   * throws: `cleanupStale` tries again at the next start.
   */
  private async purge(path: string): Promise<void> {
    try {
      if (!(await unmountBelow(path))) return;
      await rm(path, { recursive: true, force: true });
    } catch {
      // Left for the next cleanupStale.
    }
  }

  /**
   * Marks layers a build is using before any version lists them, so a delete elsewhere (another daemon
   * may share this folder) does not collect them; `unpin` when the build's version is written or dropped.
   */
  pin(id: string, keys: string[]): void {
    const dir = join(this.root, ".pins");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `${process.pid}-${id}.json`);
    ownPins.add(file);
    writeFileSync(file, JSON.stringify(keys));
  }

  unpin(id: string): void {
    const file = join(this.root, ".pins", `${process.pid}-${id}.json`);
    rmSync(file, { force: true });
    ownPins.delete(file);
  }

  private pinnedLayers(): string[] {
    const dir = join(this.root, ".pins");
    if (!existsSync(dir)) return [];
    const keys: string[] = [];
    for (const entry of readdirSync(dir)) {
      const pid = Number(/^(\d+)-/.exec(entry)?.[1] ?? 0);
      // Our own pid on a pin we did not write: a previous daemon's, restarted with the same pid.
      const stale = pid === process.pid ? !ownPins.has(join(dir, entry)) : !isAlive(pid);
      if (stale) {
        rmSync(join(dir, entry), { force: true });
        continue;
      }
      try {
        keys.push(...(JSON.parse(readFileSync(join(dir, entry), "utf8")) as string[]));
      } catch {
        // Being written: its build's layers are younger than this collection anyway.
      }
    }
    return keys;
  }

  /** Deletes layers that no version on disk lists (building versions included) and no running build pins. */
  async collectLayers(): Promise<void> {
    const dir = join(this.root, ".layers");
    if (!existsSync(dir)) return;
    // Checked and moved aside in one synchronous tick: no build of this daemon can pin or find (`hasLayer`)
    // a layer between the check and its removal, and a crash mid-delete leaves no half layer under its key.
    // (A build on another daemon sharing the folder checks its layers again once its version is written.)
    const used = new Set([...this.names().flatMap((n) => this.versions(n).flatMap((v) => v.layers)), ...this.pinnedLayers()]);
    const trashed: string[] = [];
    for (const entry of readdirSync(dir)) {
      if (entry.includes(".building-") || used.has(entry)) continue;
      const t = this.moveToTrash(join(dir, entry), `layer-${entry}`);
      if (t) trashed.push(t);
    }
    for (const t of trashed) await this.purge(t);
  }

  /**
   * After a crash: builds that were under way are gone; their staging folders and unfinished versions go
   * too, as do half-made shifted copies and the trash. Only those of dead processes: daemons sharing a
   * templates folder may be building right now. Run at daemon start, before any build or create: our own
   * pid on something is then a previous daemon's (a restarted daemon in a container often gets the same pid).
   */
  async cleanupStale(): Promise<void> {
    const dead = leftByPreviousDaemon;
    const layers = join(this.root, ".layers");
    if (existsSync(layers)) {
      for (const entry of readdirSync(layers)) {
        const pid = /\.building-(\d+)-/.exec(entry)?.[1];
        // A step's overlay may still be mounted there: purge unmounts before deleting anything.
        if (pid && dead(Number(pid))) await this.purge(join(layers, entry));
      }
    }
    const builds = join(this.root, ".builds");
    if (existsSync(builds)) {
      for (const entry of readdirSync(builds)) {
        const pid = /^(\d+)-/.exec(entry)?.[1];
        if (pid && dead(Number(pid))) await this.purge(join(builds, entry));
      }
    }
    for (const name of this.names()) {
      for (const v of this.versions(name)) {
        if (v.status === "building" && dead(v.buildPid ?? 0)) {
          this.recordVersion(name, v.version);
          const t = this.moveToTrash(this.versionDir(name, v.version), `${name}-v${v.version}`);
          if (t) await this.purge(t);
        }
      }
    }
    // Shifted copies a crash interrupted (`makeFlattenedShiftedCopy`, `makeShiftedCopy`): the overlay view
    // may still be mounted; the copy and the empty layer are half made.
    const copyDirs = [
      ...this.names().flatMap((n) => this.versions(n).map((v) => this.versionDir(n, v.version))),
      ...Object.keys(builtinRecipes).map((n) => this.dir(n)),
    ];
    for (const dir of copyDirs) {
      if (!existsSync(dir)) continue;
      for (const entry of readdirSync(dir)) {
        const pid = /^rootfs-uid\d+\.(?:view|empty|tmp)-(\d+)(?:-\d+)?$/.exec(entry)?.[1];
        if (pid && dead(Number(pid))) await this.purge(join(dir, entry));
      }
    }
    this.pinnedLayers(); // drops the pins of dead daemons
    const trash = join(this.root, ".trash");
    if (existsSync(trash)) {
      for (const entry of readdirSync(trash)) {
        // Another live daemon may be deleting its own entries right now.
        if (dead(Number(/^(\d+)-/.exec(entry)?.[1] ?? 0))) await this.purge(join(trash, entry));
      }
    }
  }

  /** The rootfs (overlay lowerdir) for a sandbox whose root is host uid `uidShift` (0 without a user namespace). */
  async rootfs(ref: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    const found = this.find(ref, true);
    if ("version" in found) {
      const lower = this.lowerdir(ref);
      if (uidShift === 0) return lower;
      // A user namespace needs every owner shifted: one flattened, shifted copy per version.
      const shifted = join(this.versionDir(found.version.name, found.version.version), `rootfs-uid${uidShift}`);
      return this.shiftedOnce(shifted, () => this.makeFlattenedShiftedCopy(lower, shifted, uidShift, progress));
    }
    const name = found.builtin.name;
    const plain = join(this.dir(name), "rootfs");
    if (uidShift === 0) return plain;
    const shifted = join(this.dir(name), `rootfs-uid${uidShift}`);
    return this.shiftedOnce(shifted, () => this.makeShiftedCopy(plain, shifted, uidShift, progress));
  }

  private async shiftedOnce(shifted: string, make: () => Promise<string>): Promise<string> {
    if (existsSync(`${shifted}.done`)) return shifted;
    let pending = this.shifting.get(shifted);
    if (!pending) {
      pending = make().finally(() => this.shifting.delete(shifted));
      this.shifting.set(shifted, pending);
    }
    return pending;
  }

  /** Copies the merged view of a layered template (a read-only overlay), then shifts its owners. */
  private async makeFlattenedShiftedCopy(lower: string, shifted: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    const view = `${shifted}.view-${process.pid}`;
    mkdirSync(view, { recursive: true });
    // A single lower layer cannot be an overlay of its own: a second, empty one makes it one.
    const empty = `${shifted}.empty-${process.pid}`;
    mkdirSync(empty, { recursive: true });
    await run("mount", ["-t", "overlay", "overlay", "-o", `ro,nodev,lowerdir=${lower}:${empty}`, view]);
    try {
      return await this.makeShiftedCopy(view, shifted, uidShift, progress);
    } finally {
      await run("umount", [view]).catch(() => run("umount", ["-l", view]));
      rmSync(view, { recursive: true, force: true });
      rmSync(empty, { recursive: true, force: true });
    }
  }

  private async makeShiftedCopy(plain: string, shifted: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    progress?.(`copying ${plain} with owners shifted by ${uidShift} (once)`);
    const tmp = `${shifted}.tmp-${process.pid}-${Date.now()}`;
    await run("cp", ["-a", "--reflink=auto", `${plain}/.`, tmp]);
    await shiftOwners(tmp, uidShift);
    rmSync(shifted, { recursive: true, force: true });
    renameSync(tmp, shifted);
    writeFileSync(`${shifted}.done`, new Date().toISOString());
    return shifted;
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
    await run("mmdebstrap", args, progress);
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

export class TemplateSettingsError extends Error {}

/** Mount points at or below `dir` (in /proc/self/mounts, a space in a path is written `\040`). */
function mountsBelow(dir: string): string[] {
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => (l.split(" ")[1] ?? "").replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Unmounts (lazily) everything at or below `dir`; true once nothing is mounted there. */
async function unmountBelow(dir: string): Promise<boolean> {
  for (const m of mountsBelow(dir).reverse()) await run("umount", ["-l", m]).catch(() => {});
  return mountsBelow(dir).length === 0;
}



function toTemplate(v: TemplateVersionManifest, latest: boolean): Template {
  return {
    name: v.name,
    version: v.version,
    ref: `${v.name}:${v.version}`,
    latest,
    source: v.source,
    from: v.from,
    builtAt: v.builtAt,
    buildMs: v.buildMs,
    layers: v.layers.length,
    sizeBytes: v.sizeBytes,
    env: v.env,
    workdir: v.workdir,
    user: v.user,
    start: v.start,
    ready: v.ready,
    resources: v.resources,
    pool: v.pool,
    snapshot: v.snapshot,
  };
}

export function recipeHash(recipe: TemplateRecipe): string {
  return createHash("sha256").update(JSON.stringify(recipe)).digest("hex").slice(0, 16);
}

async function shiftOwners(root: string, shift: number): Promise<void> {
  const stack = [root];
  while (stack.length > 0) {
    const path = stack.pop()!;
    const st = lstatSync(path);
    await lchown(path, st.uid + shift, st.gid + shift);
    // chown clears setuid/setgid bits: put the mode back (symlinks have none).
    if (!st.isSymbolicLink() && st.mode & 0o6000) await chmod(path, st.mode & 0o7777);
    if (st.isDirectory()) for (const entry of readdirSync(path)) stack.push(join(path, entry));
  }
}

function run(cmd: string, args: string[], progress?: ProgressFn): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let tail: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        tail = [...tail.slice(-20), line];
        progress?.(line);
      });
    }
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}:\n${tail.join("\n")}`))));
  });
}
