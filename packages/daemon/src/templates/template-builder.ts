import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join, posix } from "node:path";
import type { Logger } from "pino";
import type { Template, TemplateResources } from "@stasis/protocol";
import { resolveBase } from "./builder/base-layer.js";
import { BuildStepError, duBytes, hash, type BuildEmit, type BuildOverrides, type BuildRequest, type BuildState } from "./builder/build-common.js";
import { hashCopySources } from "./builder/build-context.js";
import { buildStepLayer, type StepLayerDeps } from "./builder/step-layer.js";
import { importOciImage, OciImportError, type OciImageConfig } from "./oci-import.js";
import type { BuildStep } from "./template-definition.js";
import { DEFAULT_RESOURCES, MAX_LAYERS, type TemplateVersionManifest } from "./template-store.js";

export { BuildStepError, type BuildEmit, type BuildOverrides, type BuildRequest } from "./builder/build-common.js";
export { hashContextSources, readContextFile, resolveContextSource } from "./builder/build-context.js";
export { resolveUser } from "./builder/step-user.js";

/** What the builder needs: the store, the step runner and step limit (StepLayerDeps), and more. */
export interface TemplateBuilderDeps extends StepLayerDeps {
  /** Boots the version, runs its start command until ready, checkpoints it into the version's snapshot folder. */
  snapshot: (ref: string, emit: BuildEmit, signal: AbortSignal) => Promise<{ memoryBytes: number; diskBytes: number; runtime: string }>;
  /** The runsc (version, platform) snapshots are taken with: a snapshot by another is rebuilt. */
  snapshotRuntime: () => string;
  /** Whether the daemon's default runtime can checkpoint (snapshots need it). */
  canSnapshot: () => boolean;
  log: Logger;
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
    const base = await resolveBase(this.deps.store, req, emit, total, fromText, pin);
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
      const copyHash = step.kind === "copy" ? await hashCopySources(req.contextDir, step, n) : "";
      const key = hash(chain, stepCore(step), JSON.stringify(state), copyHash);
      pin([key]);
      const cached = !req.noCache && store.hasLayer(key);
      emit({ type: "step", step: n, total, instruction: step.text, cached });
      if (cached) {
        cachedSteps++;
      } else {
        const stepStarted = performance.now();
        await buildStepLayer(this.deps, key, layers, step, state, req, (line) => emit({ type: "log", step: n, data: line }), n);
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
    const network = def.network ?? base.parent?.network ?? null;
    const config = { env: state.env, workdir: state.workdir === "/" ? null : state.workdir, user: state.user, start, ready, readyTimeoutMs: def.readyTimeoutMs, resources, pool, wantSnapshot, ...(network ? { network } : {}) };
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
      ...(network ? { network } : {}),
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
}

/** The step without where it was written: moving a step to another line keeps its cache. */
function stepCore(step: BuildStep): string {
  const { line: _line, text: _text, ...core } = step;
  return JSON.stringify(core);
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
