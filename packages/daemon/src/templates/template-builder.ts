import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { constants, existsSync, lstatSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { lstat, open, readdir, readlink, rm } from "node:fs/promises";
import { join, posix, resolve as resolvePath, sep } from "node:path";
import type { Logger } from "pino";
import type { Template, TemplateBuildEvent, TemplateResources } from "@stasis/protocol";
import { mustRun, runCommand } from "../runtime/run-command.js";
import { unmount } from "../storage/sandbox-filesystem.js";
import { BoundedReadError, readBoundedFile } from "./bounded-read.js";
import type { BuildStepRunner } from "../runtime/driver.js";
import { streamLines } from "../runtime/stream-lines.js";
import { createBuildNetwork } from "./build-network.js";
import { importOciImage, OciImportError, type OciImageConfig } from "./oci-import.js";
import type { BuildStep, TemplateDefinition } from "./template-definition.js";
import { TemplateSpecError } from "./template-definition.js";
import { builtinRecipes, type TemplateRecipe } from "./template-recipes.js";
import { DEFAULT_RESOURCES, MAX_LAYERS, recipeHash, TemplateNotFoundError, type TemplateStore, type TemplateVersionManifest } from "./template-store.js";

export type BuildEmit = (event: TemplateBuildEvent) => void;

/** A failed step: the builder's error event names it. */
export class BuildStepError extends Error {
  constructor(
    message: string,
    readonly step: number | null,
    readonly instruction: string | null,
    readonly line: number | null,
    readonly code: "template_build_failed" | "invalid_template" = "template_build_failed",
  ) {
    super(message);
  }
}

export interface BuildOverrides {
  snapshot?: boolean | undefined;
  cpu?: number | undefined;
  memoryMiB?: number | undefined;
  diskMiB?: number | undefined;
  pool?: number | undefined;
}

export interface BuildRequest {
  name: string;
  definition: TemplateDefinition;
  /** The extracted build context (COPY sources are relative to it). */
  contextDir: string;
  noCache: boolean;
  overrides: BuildOverrides;
  signal: AbortSignal;
}

export interface TemplateBuilderDeps {
  store: TemplateStore;
  /** The runtime that runs build steps (gVisor); throws when this daemon has none. */
  steps: () => BuildStepRunner;
  /** Boots the version, runs its start command until ready, checkpoints it into the version's snapshot folder. */
  snapshot: (ref: string, emit: BuildEmit, signal: AbortSignal) => Promise<{ memoryBytes: number; diskBytes: number; runtime: string }>;
  /** The runsc (version, platform) snapshots are taken with: a snapshot by another is rebuilt. */
  snapshotRuntime: () => string;
  /** Whether the daemon's default runtime can checkpoint (snapshots need it). */
  canSnapshot: () => boolean;
  log: Logger;
  /** Per-step limit (STASIS_BUILD_STEP_TIMEOUT_MS). */
  stepTimeoutMs: number;
}

/** What the steps so far have set: it applies to later steps and becomes the template's defaults. */
interface BuildState {
  env: Record<string, string>;
  workdir: string;
  user: string | null;
}

/** A Debian base made fresh with mmdebstrap: what `FROM debian:<suite>` starts from. */
function debianRecipe(suite: string): TemplateRecipe {
  const base = builtinRecipes.base;
  return { name: `debian-${suite}`, suite, variant: "minbase", packages: ["ca-certificates"], mirror: base?.mirror ?? "http://deb.debian.org/debian", customize: base?.customize ?? [] };
}

/**
 * Builds template versions: the base, then one cached layer per filesystem step (RUN, COPY, packages),
 * each made by running the step in a throwaway gVisor sandbox over an overlay of the layers below it.
 * A layer's key hashes its parent's key, the step, what the steps before it set (env, workdir, user)
 * and, for COPY, the copied files: changing a step rebuilds it and what follows, nothing before it.
 */
export class TemplateBuilder {
  constructor(private readonly deps: TemplateBuilderDeps) {}

  async build(req: BuildRequest, emit: BuildEmit): Promise<Template> {
    const pinId = randomBytes(6).toString("hex");
    const pinned: string[] = [];
    const pin = (keys: string[]) => {
      pinned.push(...keys);
      this.deps.store.pin(pinId, pinned);
    };
    try {
      return await this.buildPinned(req, emit, pin);
    } finally {
      this.deps.store.unpin(pinId);
    }
  }

  private async buildPinned(req: BuildRequest, emit: BuildEmit, pin: (keys: string[]) => void): Promise<Template> {
    const started = performance.now();
    const { definition: def, store } = { definition: req.definition, store: this.deps.store };
    const total = def.steps.length + 1;
    let cachedSteps = 0;
    let builtSteps = 0;

    // Step 1: the base.
    const fromText = def.from.kind === "debian" ? `FROM debian:${def.from.suite}` : `FROM ${def.from.ref}`;
    const base = await this.base(req, emit, total, fromText, pin);
    if (base.cached) cachedSteps++;
    else builtSteps++;
    const layers = [...base.layers];
    const inherited = new Set(layers);
    let chain = base.key;
    const state: BuildState = { env: { ...base.parent?.env }, workdir: base.parent?.workdir ?? "/", user: base.parent?.user ?? null };

    for (const [i, step] of def.steps.entries()) {
      const n = i + 2;
      if (req.signal.aborted) throw new BuildStepError("the build was cancelled", n, step.text, step.line);
      if (step.kind === "env" || step.kind === "workdir" || step.kind === "user") {
        emit({ type: "step", step: n, total, instruction: step.text, cached: false });
        if (step.kind === "env") Object.assign(state.env, step.vars);
        else if (step.kind === "workdir") state.workdir = posix.resolve(state.workdir, step.path);
        else state.user = step.user;
        chain = hash(chain, stepCore(step));
        continue;
      }
      if (layers.length >= MAX_LAYERS) {
        throw new BuildStepError(`more than ${MAX_LAYERS} filesystem layers: merge some RUN or COPY steps`, n, step.text, step.line, "invalid_template");
      }
      const copyHash = step.kind === "copy" ? await this.hashSources(req.contextDir, step, n) : "";
      const key = hash(chain, stepCore(step), JSON.stringify(state), copyHash);
      pin([key]);
      const cached = !req.noCache && store.hasLayer(key);
      emit({ type: "step", step: n, total, instruction: step.text, cached });
      if (cached) {
        cachedSteps++;
      } else {
        const stepStarted = performance.now();
        await this.buildLayer(key, layers, step, state, req, (line) => emit({ type: "log", step: n, data: line }), n);
        emit({ type: "progress", message: `step ${n}/${total} done in ${((performance.now() - stepStarted) / 1000).toFixed(1)} s` });
        builtSteps++;
      }
      layers.push(key);
      chain = key;
    }

    const resources: TemplateResources = {
      ...DEFAULT_RESOURCES,
      ...base.parent?.resources,
      ...def.resources,
      ...definedOnly({ cpu: req.overrides.cpu, memoryMiB: req.overrides.memoryMiB, diskMiB: req.overrides.diskMiB }),
    };
    const start = def.start ?? base.parent?.start ?? null;
    const ready = def.ready ?? (def.start ? null : (base.parent?.ready ?? null));
    const wantSnapshot = req.overrides.snapshot ?? def.snapshot ?? (start !== null && this.deps.canSnapshot());
    if (wantSnapshot && start === null) throw new BuildStepError("a snapshot needs a start command (spec `start`, Dockerfile CMD)", null, null, null, "invalid_template");
    if (wantSnapshot && !this.deps.canSnapshot()) throw new BuildStepError("snapshots need the gvisor runtime (crun has no checkpoint)", null, null, null, "invalid_template");
    const pool = req.overrides.pool ?? def.pool ?? 0;
    const config = { env: state.env, workdir: state.workdir === "/" ? null : state.workdir, user: state.user, start, ready, readyTimeoutMs: def.readyTimeoutMs, resources, pool, wantSnapshot };
    const buildKey = hash(chain, JSON.stringify(config));

    const latest = store.versions(req.name).find((v) => v.status === "ready");
    // A snapshot another runsc took (an upgrade) is not up to date: its sandboxes boot cold until rebuilt.
    const staleSnapshot = wantSnapshot && latest?.snapshot?.runtime !== undefined && latest.snapshot.runtime !== this.deps.snapshotRuntime();
    if (latest && latest.buildKey === buildKey && !req.noCache && !staleSnapshot) {
      emit({ type: "progress", message: `${req.name}:${latest.version} is up to date: nothing changed since it was built` });
      const template = store.get(`${req.name}:${latest.version}`);
      emit({ type: "done", template, durationMs: Math.round(performance.now() - started), cachedSteps, builtSteps });
      return template;
    }

    const version = this.deps.store.claimVersion(req.name);
    const manifest: TemplateVersionManifest = {
      name: req.name,
      version,
      status: "building",
      buildPid: process.pid,
      source: req.definition.source,
      from: def.from.kind === "debian" ? `debian:${def.from.suite}` : (base.parent?.ref ?? def.from.ref),
      builtAt: new Date().toISOString(),
      buildMs: null,
      layers,
      sizeBytes: layers.filter((l) => !inherited.has(l)).reduce((sum, l) => sum + store.layerSize(l), 0),
      buildKey,
      env: config.env,
      workdir: config.workdir,
      user: config.user,
      start,
      ready,
      readyTimeoutMs: def.readyTimeoutMs,
      resources,
      pool,
      snapshot: null,
    };
    store.writeVersion(manifest);
    try {
      // Pins cannot close every race with a delete on another daemon sharing the folder: check.
      const lost = layers.filter((l) => !store.hasLayer(l));
      if (lost.length > 0) throw new BuildStepError(`layers ${lost.join(", ")} were deleted by a template delete during this build; build again`, null, null, null);
      if (wantSnapshot) {
        emit({ type: "progress", message: `snapshot: booting ${req.name}:${version}, starting \`${start}\`${ready ? `, waiting for \`${ready}\`` : ""}` });
        const snapStarted = performance.now();
        const sizes = await this.deps.snapshot(`${req.name}:${version}`, emit, req.signal);
        manifest.snapshot = { takenAt: new Date().toISOString(), ...sizes };
        emit({ type: "progress", message: `snapshot taken in ${((performance.now() - snapStarted) / 1000).toFixed(1)} s: ${mib(sizes.memoryBytes)} MiB memory image, ${mib(sizes.diskBytes)} MiB disk` });
      }
      manifest.status = "ready";
      delete manifest.buildPid;
      manifest.buildMs = Math.round(performance.now() - started);
      store.writeVersion(manifest);
    } catch (err) {
      await rm(store.versionDir(req.name, version), { recursive: true, force: true });
      throw err;
    }
    const template = store.get(`${req.name}:${version}`);
    emit({ type: "done", template, durationMs: Math.round(performance.now() - started), cachedSteps, builtSteps });
    return template;
  }

  /**
   * Imports an OCI image as a one-layer template version. Its env, workdir and user become the
   * template's; its CMD is reported but not made the start command (many images' CMD is an interactive
   * shell or REPL): build FROM the imported template with a `start` to have one.
   */
  async importImage(req: { name: string; archive: string; archiveHash: string; image?: string | undefined; workDir: string; overrides: BuildOverrides; signal: AbortSignal }, emit: BuildEmit): Promise<Template> {
    const started = performance.now();
    const { store } = this.deps;
    const key = hash("oci", req.archiveHash, req.image ?? "");
    const pinId = randomBytes(6).toString("hex");
    store.pin(pinId, [key]);
    try {
      return await this.importPinned(req, emit, key, started);
    } finally {
      store.unpin(pinId);
    }
  }

  private async importPinned(req: { name: string; archive: string; image?: string | undefined; workDir: string; overrides: BuildOverrides; signal: AbortSignal }, emit: BuildEmit, key: string, started: number): Promise<Template> {
    const { store } = this.deps;
    const cached = store.hasLayer(key);
    emit({ type: "step", step: 1, total: 1, instruction: `IMPORT ${req.image ?? "image"}`, cached });
    let config: OciImageConfig | null = null;
    if (!cached) {
      const staging = store.stagingDir(key);
      try {
        rmSync(join(staging, "diff"), { recursive: true, force: true });
        rmSync(join(staging, "work"), { recursive: true, force: true });
        config = await importOciImage(req.archive, join(staging, "diff"), { ...(req.image ? { image: req.image } : {}), workDir: req.workDir, progress: (line) => emit({ type: "log", step: 1, data: line }), signal: req.signal });
        writeFileSync(join(staging, "image-config.json"), JSON.stringify(config));
        store.commitLayer(key, staging, { sizeBytes: await duBytes(join(staging, "diff")), step: `IMPORT ${req.image ?? "image"}` });
      } catch (err) {
        rmSync(staging, { recursive: true, force: true });
        if (err instanceof OciImportError) throw new BuildStepError(err.message, 1, `IMPORT ${req.image ?? "image"}`, null, "invalid_template");
        throw err;
      }
    }
    config ??= JSON.parse(readFileSync(join(store.layerDir(key), "image-config.json"), "utf8")) as OciImageConfig;
    if (config.start) emit({ type: "progress", message: `the image's command is \`${config.start}\`; it is not run on create: build FROM ${req.name} with a \`start\` to make it the start command` });
    const resources: TemplateResources = { ...DEFAULT_RESOURCES, ...definedOnly({ cpu: req.overrides.cpu, memoryMiB: req.overrides.memoryMiB, diskMiB: req.overrides.diskMiB }) };
    const pool = req.overrides.pool ?? 0;
    const buildKey = hash(key, JSON.stringify({ resources, pool }));
    const latest = store.versions(req.name).find((v) => v.status === "ready");
    if (latest && latest.buildKey === buildKey) {
      emit({ type: "progress", message: `${req.name}:${latest.version} is up to date: the same image was imported before` });
      const template = store.get(`${req.name}:${latest.version}`);
      emit({ type: "done", template, durationMs: Math.round(performance.now() - started), cachedSteps: 1, builtSteps: 0 });
      return template;
    }
    const version = this.deps.store.claimVersion(req.name);
    store.writeVersion({
      name: req.name,
      version,
      status: "ready",
      source: "oci",
      from: req.image ? `oci:${req.image}` : "oci",
      builtAt: new Date().toISOString(),
      buildMs: Math.round(performance.now() - started),
      layers: [key],
      sizeBytes: store.layerSize(key),
      buildKey,
      env: config.env,
      workdir: config.workdir,
      user: config.user,
      start: null,
      ready: null,
      readyTimeoutMs: null,
      resources,
      pool,
      snapshot: null,
    });
    const template = store.get(`${req.name}:${version}`);
    emit({ type: "done", template, durationMs: Math.round(performance.now() - started), cachedSteps: cached ? 1 : 0, builtSteps: cached ? 0 : 1 });
    return template;
  }

  /** The first layer(s): a Debian release, the built-in base, or another template's layers and settings. */
  private async base(req: BuildRequest, emit: BuildEmit, total: number, text: string, pin: (keys: string[]) => void): Promise<{ key: string; layers: string[]; cached: boolean; parent: (TemplateVersionManifest & { ref: string }) | null }> {
    const { store } = this.deps;
    const from = req.definition.from;
    const line = req.definition.fromLine;
    if (from.kind === "template") {
      if (from.ref.split(":")[0] === req.name) throw new BuildStepError(`a template cannot be built from itself ('${from.ref}')`, 1, text, line, "invalid_template");
      let resolved;
      try {
        resolved = store.resolve(from.ref);
      } catch (err) {
        if (err instanceof TemplateNotFoundError) {
          // `FROM node:20` reads as a template ref: say why it is not an image from a registry.
          throw new BuildStepError(`${err.message} (FROM names a Stasis template or debian:<release>; registries are unreachable: \`stasis template import\` a \`docker save\` tarball, then build FROM it)`, 1, text, line, "invalid_template");
        }
        throw err;
      }
      if (resolved.builtin) {
        const recipe = builtinRecipes[resolved.name];
        const key = hash("builtin", resolved.name, recipe ? recipeHash(recipe) : "", store.manifest(resolved.name)?.builtAt ?? "");
        pin([key]);
        const cached = store.hasLayer(key);
        emit({ type: "step", step: 1, total, instruction: text, cached });
        if (!cached) {
          // Hard links: instant, no extra disk, and the layer keeps this build of the base even after
          // `template build --builtin` replaces the base's folder.
          const staging = store.stagingDir(key);
          rmSync(join(staging, "diff"), { recursive: true, force: true });
          await must("cp", ["-al", join(store.dir(resolved.name), "rootfs"), join(staging, "diff")]);
          rmSync(join(staging, "work"), { recursive: true, force: true });
          store.commitLayer(key, staging, { sizeBytes: 0, step: text });
        }
        return { key, layers: [key], cached, parent: null };
      }
      const [name, version] = resolved.ref.split(":");
      const parent = store.versions(name ?? "").find((v) => v.version === Number(version));
      if (!parent) throw new BuildStepError(`template '${from.ref}' vanished during the build`, 1, text, line);
      pin(parent.layers);
      emit({ type: "step", step: 1, total, instruction: text, cached: true });
      return { key: hash("template", parent.buildKey), layers: [...parent.layers], cached: true, parent: { ...parent, ref: resolved.ref } };
    }
    const recipe = debianRecipe(from.suite);
    const key = hash("debian", recipeHash(recipe));
    pin([key]);
    const cached = store.hasLayer(key);
    emit({ type: "step", step: 1, total, instruction: text, cached });
    if (!cached) {
      const staging = store.stagingDir(key);
      try {
        rmSync(join(staging, "diff"), { recursive: true, force: true });
        emit({ type: "progress", message: `mmdebstrap: debian ${from.suite} (minbase), from ${recipe.mirror}` });
        const args = [`--variant=${recipe.variant}`, `--include=${recipe.packages.join(",")}`, ...recipe.customize.map((h) => `--customize-hook=${h}`), recipe.suite, join(staging, "diff"), recipe.mirror];
        const out = await runStreaming("mmdebstrap", args, (l) => emit({ type: "log", step: 1, data: l }), req.signal, 30 * 60_000);
        if (out !== 0) throw new BuildStepError(`mmdebstrap failed (exit ${out}): is ${recipe.mirror} reachable and '${from.suite}' a Debian release?`, 1, text, line);
        rmSync(join(staging, "work"), { recursive: true, force: true });
        store.commitLayer(key, staging, { sizeBytes: await duBytes(join(staging, "diff")), step: text });
      } catch (err) {
        rmSync(staging, { recursive: true, force: true });
        throw err;
      }
    }
    return { key, layers: [key], cached, parent: null };
  }

  /** Runs one filesystem step over the layers below it; its writes become the new layer. */
  private async buildLayer(key: string, below: string[], step: Exclude<BuildStep, { kind: "env" | "workdir" | "user" }>, state: BuildState, req: BuildRequest, onLine: (line: string) => void, n: number): Promise<void> {
    const { store } = this.deps;
    const staging = store.stagingDir(key);
    const merged = join(staging, "rootfs");
    mkdirSync(merged);
    let mounted = false;
    let network: Awaited<ReturnType<typeof createBuildNetwork>> | null = null;
    try {
      const lower = [...below].reverse().map((l) => join(store.layerDir(l), "diff"));
      // overlayfs needs two lower layers or an upper; the upper is this step's new layer.
      await must("mount", ["-t", "overlay", "overlay", "-o", `nodev,lowerdir=${lower.join(":")},upperdir=${join(staging, "diff")},workdir=${join(staging, "work")}`, merged]);
      mounted = true;
      const runAs = step.kind === "packages" || step.kind === "copy" ? { uid: 0, gid: 0 } : await resolveUser(merged, state.user, step);
      const { args, binds, wantsNetwork } = this.commandFor(step, state, req.contextDir, n);
      if (wantsNetwork) network = await createBuildNetwork();
      const resolv = join(staging, "resolv.conf");
      if (network) writeFileSync(resolv, network.resolvConf);
      const result = await this.deps.steps().runStep({
        // The daemon's pid in the id lets removeStaleSteps tell a crashed daemon's leftovers.
        id: `stasis-build-${process.pid}-${randomBytes(6).toString("hex")}`,
        dir: staging,
        rootfs: merged,
        args,
        env: { ...state.env, ...(step.kind === "packages" ? { DEBIAN_FRONTEND: "noninteractive" } : {}) },
        uid: runAs.uid,
        gid: runAs.gid,
        cpu: Math.max(1, req.overrides.cpu ?? 0, req.definition.resources.cpu ?? 0),
        memoryMiB: Math.max(2048, req.overrides.memoryMiB ?? 0, req.definition.resources.memoryMiB ?? 0),
        netnsPath: network?.netnsPath ?? null,
        binds: [...binds, ...(network ? [{ source: resolv, destination: "/etc/resolv.conf", readonly: true }] : [])],
        timeoutMs: this.deps.stepTimeoutMs,
        signal: req.signal,
        onLine,
      });
      if (result.code !== 0) {
        throw new BuildStepError(`step ${n} failed: ${step.text}: ${result.reason}`, n, step.text, step.line);
      }
    } catch (err) {
      if (mounted) await unmount(merged);
      await network?.release();
      rmSync(staging, { recursive: true, force: true });
      if (err instanceof BuildStepError || err instanceof TemplateSpecError) throw err;
      throw new BuildStepError(`step ${n} could not run: ${(err as Error).message}`, n, step.text, step.line);
    }
    await unmount(merged);
    await network?.release();
    rmSync(merged, { recursive: true, force: true });
    rmSync(join(staging, "work"), { recursive: true, force: true });
    rmSync(join(staging, "resolv.conf"), { force: true });
    rmSync(join(staging, "bundle"), { recursive: true, force: true });
    store.commitLayer(key, staging, { sizeBytes: await duBytes(join(staging, "diff")), step: step.text });
  }

  private commandFor(step: Exclude<BuildStep, { kind: "env" | "workdir" | "user" }>, state: BuildState, contextDir: string, n: number): { args: string[]; binds: { source: string; destination: string; readonly: boolean }[]; wantsNetwork: boolean } {
    if (step.kind === "run") {
      const argv = typeof step.command === "string" ? ["/bin/sh", "-c", step.command] : step.command;
      // WORKDIR creates its folder, as in Docker; the step then runs there.
      return { args: ["/bin/sh", "-c", 'mkdir -p -- "$1" && cd -- "$1" && shift && exec "$@"', "sh", state.workdir, ...argv], binds: [], wantsNetwork: true };
    }
    if (step.kind === "packages") {
      for (const name of step.names) {
        if (!/^[a-z0-9][a-z0-9+.~:=-]*$/.test(name)) throw new BuildStepError(`'${name}' is not a Debian package name`, n, step.text, step.line, "invalid_template");
      }
      const script = 'apt-get update -q && apt-get install -y -q --no-install-recommends -- "$@" && apt-get clean && rm -rf /var/lib/apt/lists/*';
      return { args: ["/bin/sh", "-c", script, "sh", ...step.names], binds: [], wantsNetwork: true };
    }
    // COPY runs inside the sandbox too: the layers below are untrusted, and a host-side copy would
    // follow their symlinks onto the host.
    const dest = posix.resolve(state.workdir, step.dest);
    const dirTarget = step.dest.endsWith("/") || step.sources.length > 1;
    const script = [
      "set -e",
      'dest=$1; chown_to=$2; dir_target=$3; shift 3',
      'for src in "$@"; do',
      '  s="/.stasis-context/$src"',
      '  if [ -d "$s" ] && [ ! -L "$s" ]; then mkdir -p -- "$dest"; cp -a -- "$s/." "$dest/"; [ -z "$chown_to" ] || (cd "$s" && find . -mindepth 1 -print0 | (cd "$dest" && xargs -0 -r chown -h -- "$chown_to"))',
      '  elif [ "$dir_target" = 1 ]; then mkdir -p -- "$dest"; t="$dest/$(basename -- "$src")"; cp -a -- "$s" "$t"; [ -z "$chown_to" ] || chown -h -R -- "$chown_to" "$t"',
      '  else mkdir -p -- "$(dirname -- "$dest")"; cp -a -- "$s" "$dest"; [ -z "$chown_to" ] || chown -h -R -- "$chown_to" "$dest"; fi',
      "done",
    ].join("\n");
    const sources = step.sources.map((s) => this.contextPath(contextDir, s, step, n));
    return {
      args: ["/bin/sh", "-c", script, "sh", dest, step.chown ?? "", dirTarget ? "1" : "0", ...sources],
      binds: [{ source: contextDir, destination: "/.stasis-context", readonly: true }],
      wantsNetwork: false,
    };
  }

  /** A COPY source as a path relative to the context, refused if it leaves the context or is missing. */
  private contextPath(contextDir: string, source: string, step: BuildStep, n: number): string {
    const resolved = resolveContextSource(contextDir, source);
    if ("refused" in resolved) throw new BuildStepError(resolved.refused, n, step.text, step.line, "invalid_template");
    return resolved.rel;
  }

  /** Content hash of COPY sources: names, modes, file bytes and link targets. */
  private async hashSources(contextDir: string, step: Extract<BuildStep, { kind: "copy" }>, n: number): Promise<string> {
    const rels = step.sources.map((source) => this.contextPath(contextDir, source, step, n));
    return hashContextSources(contextDir, rels);
  }
}

/**
 * A COPY source as a path relative to the context, or why it is refused: it leaves the context, is
 * missing, or a symlink on its way leads out. `.` (also `./`, `/`) is the context root itself.
 */
export function resolveContextSource(contextDir: string, source: string): { rel: string } | { refused: string } {
  const rel = posix.normalize(source.replace(/^\/+/, ""));
  if (rel === ".." || rel.startsWith("../")) return { refused: `COPY source '${source}' is outside the build context` };
  // The root has no parent inside the context: the parent check below refused `COPY . /app`.
  if (rel === "." || rel === "./") return { rel: "." };
  const full = resolvePath(contextDir, rel);
  if (!existsSync(full) && !isSymlink(full)) return { refused: `COPY source '${source}' is not in the build context` };
  // A symlink in the middle of the path could lead out of the context.
  const parent = realpathSync(resolvePath(full, ".."));
  const root = realpathSync(contextDir);
  if (parent !== root && !parent.startsWith(root + sep)) return { refused: `COPY source '${source}' leads outside the build context` };
  return { rel };
}

/**
 * sha256 over each source's tree: per entry `rel\0mode\0`, then the link target or the file's bytes, then
 * `\0`. Files are streamed, not read whole and synchronously: a large COPY source neither blocks the event
 * loop nor needs its size in memory. The bytes hashed are the same as before, so layer keys stay valid.
 */
export async function hashContextSources(contextDir: string, rels: string[]): Promise<string> {
  const h = createHash("sha256");
  const walk = async (path: string, rel: string): Promise<void> => {
    const st = await lstat(path);
    h.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) h.update(await readlink(path));
    else if (st.isDirectory()) for (const e of (await readdir(path)).sort()) await walk(join(path, e), `${rel}/${e}`);
    else if (st.isFile()) {
      const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        for await (const chunk of file.createReadStream({ autoClose: false })) h.update(chunk as Buffer);
      } finally {
        await file.close();
      }
    }
    h.update("\0");
  };
  for (const rel of rels) await walk(resolvePath(contextDir, rel), rel);
  return h.digest("hex");
}

/** The step without where it was written: moving a step to another line keeps its cache. */
function stepCore(step: BuildStep): string {
  const { line: _line, text: _text, ...core } = step;
  return JSON.stringify(core);
}

function hash(...parts: string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex").slice(0, 32);
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Most of /etc/passwd or /etc/group read to look a USER up. */
const MAX_USER_DB_BYTES = 1024 * 1024;

/**
 * uid/gid for a USER: numbers as given, names looked up in the layer's /etc/passwd and /etc/group. The
 * files are read from the host side, so a symlinked /etc or passwd (which could point at host files) is
 * refused rather than followed; so is anything but a regular file of at most 1 MiB (a FIFO would block
 * the daemon's event loop forever, a device node is a host device, a huge sparse file reads GBs).
 */
export async function resolveUser(rootfs: string, user: string | null, step: BuildStep): Promise<{ uid: number; gid: number }> {
  if (user === null || user === "root" || user === "0") return { uid: 0, gid: 0 };
  const [u = "", g] = user.split(":");
  const read = async (file: string): Promise<string[][]> => {
    const refuse = (what: string) => new BuildStepError(`/etc/${file} in the template is ${what}; USER needs a plain file to look '${user}' up`, null, step.text, step.line);
    if (isSymlink(join(rootfs, "etc"))) throw refuse("a symlink");
    try {
      return (await readBoundedFile(join(rootfs, "etc", file), MAX_USER_DB_BYTES)).toString("utf8").split("\n").map((l) => l.split(":"));
    } catch (err) {
      if (!(err instanceof BoundedReadError)) return [];
      const why = { missing: null, symlink: "a symlink", not_regular: "not a regular file", too_large: `larger than ${MAX_USER_DB_BYTES / 1024 / 1024} MiB` }[err.reason];
      if (why === null) return []; // missing: the name is not found
      throw refuse(why);
    }
  };
  const passwd = /^\d+$/.test(u) ? null : (await read("passwd")).find((f) => f[0] === u);
  if (passwd === undefined) throw new BuildStepError(`USER '${u}' does not exist in the template (add it with RUN useradd)`, null, step.text, step.line, "invalid_template");
  const uid = passwd ? Number(passwd[2]) : Number(u);
  let gid = passwd ? Number(passwd[3]) : uid;
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const group = (await read("group")).find((f) => f[0] === g);
      if (!group) throw new BuildStepError(`group '${g}' does not exist in the template`, null, step.text, step.line, "invalid_template");
      gid = Number(group[2]);
    }
  }
  return { uid, gid };
}

const must = (cmd: string, args: string[]) => mustRun(cmd, args, { timeoutMs: 600_000 });

async function duBytes(path: string): Promise<number> {
  const out = await runCommand("du", ["-sb", path], { timeoutMs: 300_000 });
  return Number(out.stdout.split(/\s/)[0]) || 0;
}

function runStreaming(cmd: string, args: string[], onLine: (line: string) => void, signal: AbortSignal, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    // Bounded lines (not readline, which buffers a line without limit): see streamLines.
    for (const s of [child.stdout, child.stderr]) streamLines(s, onLine);
    const kill = () => child.kill("SIGKILL");
    const timer = setTimeout(kill, timeoutMs);
    signal.addEventListener("abort", kill, { once: true });
    if (signal.aborted) kill(); // cancelled before it started: a listener added now never fires
    child.on("error", (err) => onLine(`could not start ${cmd}: ${err.message}`));
    child.on("close", (code) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", kill);
      resolve(code);
    });
  });
}

/** Reads at most `limit` bytes of a spec file from the context (the caller has checked the path). */
export async function readContextFile(path: string, limit: number): Promise<string> {
  try {
    return (await readBoundedFile(path, limit)).toString("utf8");
  } catch (err) {
    if (!(err instanceof BoundedReadError) || err.reason === "missing") throw err;
    throw new TemplateSpecError(err.reason === "too_large" ? `the spec file is larger than ${limit} bytes` : `${path} is not a regular file`, null);
  }
}
