import { createHash, randomBytes } from "node:crypto";
import { closeSync, createWriteStream, existsSync, lstatSync, mkdirSync, openSync, readSync, realpathSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join, posix, resolve as resolvePath, sep } from "node:path";
import { once } from "node:events";
import type { Logger } from "pino";
import type { BuildTemplateQuerySchema, ImportTemplateQuerySchema, Template, TemplateBuildEvent, UpdateTemplateRequest } from "@stasis/protocol";
import type { z } from "zod";
import type { DaemonConfig } from "../config/config.js";
import { ApiError } from "../errors/api-error.js";
import { runCommand } from "../runtime/run-command.js";
import { TemplateSpecError } from "../templates/template-definition.js";
import type { BuildStepRunner } from "../runtime/driver.js";
import { BuildStepError, readContextFile, TemplateBuilder, type BuildEmit } from "../templates/template-builder.js";
import { DEFAULT_SPEC_FILES, parseTemplateFile } from "../templates/template-parser.js";
import { TemplateNotFoundError, TemplateSettingsError, type TemplateStore } from "../templates/template-store.js";
import { Limiter } from "../concurrency/limiter.js";
import type { SandboxService } from "./sandbox-service.js";
import type { Attributes } from "@opentelemetry/api";
import { traced } from "../observability/tracing.js";

const MAX_SPEC_BYTES = 1024 * 1024;
/** Log lines a slow client may fall behind by before lines are dropped (and counted) rather than queued. */
const MAX_QUEUED_EVENTS = 10_000;

export interface TemplateServiceDeps {
  config: DaemonConfig;
  store: TemplateStore;
  builder: TemplateBuilder;
  sandboxes: SandboxService;
  log: Logger;
}

/** Wires the builder to the build-step runtime and to the sandbox service (snapshots). */
export function createTemplateService(deps: { config: DaemonConfig; store: TemplateStore; sandboxes: SandboxService; steps: BuildStepRunner | undefined; log: Logger }): TemplateService {
  const { config, store, sandboxes, steps, log } = deps;
  const builder = new TemplateBuilder({
    store,
    steps: () => {
      if (!steps) throw new ApiError("runtime_unavailable", "template builds run their steps in a runtime that can run build steps (gVisor), which this daemon does not have");
      return steps;
    },
    snapshot: (ref, _emit, signal) => sandboxes.snapshotTemplate(ref, signal),
    canSnapshot: () => sandboxes.canSnapshot(),
    snapshotRuntime: () => sandboxes.snapshotRuntime(),
    log,
    stepTimeoutMs: config.buildStepTimeoutMs,
  });
  return new TemplateService({ config, store, builder, sandboxes, log });
}

type BuildQuery = z.output<typeof BuildTemplateQuerySchema>;
type ImportQuery = z.output<typeof ImportTemplateQuerySchema>;

/**
 * Template builds, imports and management. A build receives its context as a tar stream, unpacks it in a
 * private folder, parses the spec or Dockerfile (errors here are ordinary HTTP errors), then streams the
 * builder's events; a client that goes away cancels its build.
 */
export class TemplateService {
  /** Builds are heavy (CPU, disk, network): a few at a time, the rest wait their turn. */
  private readonly builds = new Limiter(2);

  constructor(private readonly deps: TemplateServiceDeps) {}

  list(): Template[] {
    return this.deps.store.list();
  }

  get(ref: string): Template {
    return this.wrap(() => this.deps.store.get(ref));
  }

  update(ref: string, change: UpdateTemplateRequest): Template {
    return this.wrap(() => this.deps.store.update(ref, change));
  }

  /** Deletes a version or every version of a name, once no sandbox uses them (pool members are discarded). */
  async delete(ref: string): Promise<void> {
    const name = ref.split(":")[0] ?? ref;
    if (this.deps.store.isBuiltinName(name)) throw new ApiError("invalid_request", `the built-in template '${name}' cannot be deleted`);
    const targets = ref.includes(":") ? [this.get(ref)] : this.deps.store.list().filter((t) => t.name === name);
    if (targets.length === 0) throw new ApiError("template_not_found", `no template '${ref}'`);
    const refs = targets.map((t) => t.ref);
    // From here until the versions are gone, no create or pool refill may start using them.
    const release = this.deps.sandboxes.holdForDelete(refs);
    try {
      const inUse = (users: { id: string; state: string }[]) =>
        new ApiError("template_in_use", `${users.length} sandbox(es) use ${ref}: ${users.slice(0, 10).map((u) => `${u.id} (${u.state})`).join(", ")}; delete them first`);
      const users = this.deps.sandboxes.usersOf(refs).filter((u) => !u.pooled);
      if (users.length > 0) throw inUse(users);
      await this.deps.sandboxes.discardPoolsOf(refs);
      // A pool member claimed, or still starting, while the pools were discarded.
      const left = this.deps.sandboxes.usersOf(refs);
      if (left.length > 0) throw inUse(left);
      // Exactly the versions checked: one that finished building meanwhile is not among them.
      await this.deps.store.remove(refs);
    } catch (err) {
      this.wrap(() => {
        throw err;
      });
    } finally {
      release();
    }
    this.deps.log.info({ template: ref }, "template deleted");
  }

  /** Receives and unpacks the context, parses the spec, then yields the build's events. */
  async *build(query: BuildQuery, body: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncGenerator<TemplateBuildEvent> {
    if (this.deps.store.isBuiltinName(query.name)) throw new ApiError("invalid_template", `'${query.name}' is a built-in template's name; pick another`);
    const work = this.workDir();
    try {
      const archive = join(work, "context.tar");
      const { bytes } = await this.receive(body, archive);
      const context = join(work, "context");
      mkdirSync(context);
      if (bytes > 0) {
        // Uncompressed only: GNU tar would otherwise inflate a small upload into anything (a tar bomb).
        if (!isPlainTar(archive)) throw new ApiError("invalid_template", "the build context must be an uncompressed tar archive (no gzip, xz, zstd or bzip2)");
        // GNU tar refuses absolute names and `..`, and delays symlinks so none can redirect later members.
        const out = await runCommand("tar", ["-x", "--no-same-owner", "--delay-directory-restore", "-f", archive, "-C", context], { timeoutMs: 600_000, signal });
        if (out.code !== 0) throw new ApiError("invalid_template", `the build context is not a readable tar archive: ${out.stderr.trim().slice(-500)}`);
        // Sparse members take little room in the tar and any apparent size once extracted.
        const du = await runCommand("du", ["-sb", context], { timeoutMs: 120_000 });
        const extracted = Number(du.stdout.split("\t")[0]);
        if (!(extracted <= this.deps.config.maxBuildContextBytes)) {
          throw new ApiError("payload_too_large", `the build context unpacks to ${extracted} bytes, more than ${this.deps.config.maxBuildContextBytes} (STASIS_MAX_BUILD_CONTEXT_BYTES)`);
        }
      }
      await rm(archive, { force: true });
      const fileName = this.specFile(context, query.file);
      let definition;
      try {
        definition = parseTemplateFile(posix.basename(fileName), await readContextFile(join(context, fileName), MAX_SPEC_BYTES));
      } catch (err) {
        if (err instanceof TemplateSpecError) throw new ApiError("invalid_template", `${fileName}: ${err.message}`, err.line === null ? undefined : { file: fileName, line: err.line });
        throw err;
      }
      yield { type: "progress", message: `context: ${(bytes / 1024 / 1024).toFixed(1)} MiB; building ${query.name} from ${fileName} (${definition.source})` };
      yield* this.stream(signal, { "stasis.template": query.name, "stasis.template.source": definition.source }, (emit, inner) =>
        this.deps.builder.build(
          {
            name: query.name,
            definition,
            contextDir: context,
            noCache: query.noCache ?? false,
            overrides: { snapshot: query.snapshot, cpu: query.cpu, memoryMiB: query.memoryMiB, diskMiB: query.diskMiB, pool: query.pool },
            signal: inner,
          },
          emit,
        ),
      );
    } finally {
      await this.cleanup(work);
    }
  }

  async *import(query: ImportQuery, body: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncGenerator<TemplateBuildEvent> {
    if (this.deps.store.isBuiltinName(query.name)) throw new ApiError("invalid_template", `'${query.name}' is a built-in template's name; pick another`);
    const work = this.workDir();
    try {
      const archive = join(work, "image.tar");
      const { bytes, sha256 } = await this.receive(body, archive);
      if (bytes === 0) throw new ApiError("invalid_template", "the body is empty: send a `docker save` tarball or a tar of an OCI layout");
      yield { type: "progress", message: `received ${(bytes / 1024 / 1024).toFixed(1)} MiB; importing as ${query.name}` };
      yield* this.stream(signal, { "stasis.template": query.name, "stasis.template.source": "import" }, (emit, inner) =>
        this.deps.builder.importImage(
          { name: query.name, archive, archiveHash: sha256, image: query.image, workDir: join(work, "unpack"), overrides: { cpu: query.cpu, memoryMiB: query.memoryMiB, diskMiB: query.diskMiB, pool: query.pool }, signal: inner },
          emit,
        ),
      );
    } finally {
      await this.cleanup(work);
    }
  }

  /** Runs a build (one of a few at a time), turning its emitted events into a pull-based stream. */
  private async *stream(signal: AbortSignal, attributes: Attributes, run: (emit: BuildEmit, signal: AbortSignal) => Promise<Template>): AsyncGenerator<TemplateBuildEvent> {
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const queue: TemplateBuildEvent[] = [];
    let dropped = 0;
    let wake: (() => void) | null = null;
    let finished = false;
    const emit: BuildEmit = (event) => {
      if (event.type === "log" && queue.length >= MAX_QUEUED_EVENTS) {
        dropped++;
        return;
      }
      if (dropped > 0 && event.type !== "log") {
        queue.push({ type: "progress", message: `${dropped} log lines dropped: the client read too slowly` });
        dropped = 0;
      }
      queue.push(event);
      wake?.();
    };
    if (this.builds.full) emit({ type: "progress", message: "waiting for another build to finish" });
    const done = this.builds
      .run(() => traced("template.build", attributes, () => run(emit, abort.signal)))
      .catch((err: unknown) => emit(this.errorEvent(err)))
      .finally(() => {
        finished = true;
        wake?.();
      });
    try {
      for (;;) {
        const next = queue.shift();
        if (next) {
          yield next;
          if (next.type === "done" || next.type === "error") break;
          continue;
        }
        if (finished) break;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      // The client went away (or the build ended): stop the build and wait for its cleanup.
      abort.abort();
      signal.removeEventListener("abort", onAbort);
      await done;
    }
  }

  private errorEvent(err: unknown): TemplateBuildEvent {
    if (err instanceof BuildStepError) return { type: "error", code: err.code, message: err.message, step: err.step, instruction: err.instruction, line: err.line };
    if (err instanceof TemplateSpecError) return { type: "error", code: "invalid_template", message: err.message, step: null, instruction: null, line: err.line };
    if (err instanceof ApiError) return { type: "error", code: err.code === "sandbox_failed" ? "template_build_failed" : err.code, message: err.code === "sandbox_failed" ? `snapshot failed: ${err.message}` : err.message, step: null, instruction: null, line: null };
    this.deps.log.error({ err }, "template build failed unexpectedly");
    return { type: "error", code: "internal", message: (err as Error).message ?? String(err), step: null, instruction: null, line: null };
  }

  /** The spec or Dockerfile to build from: the one asked for, else the first default name present. */
  private specFile(context: string, asked: string | undefined): string {
    if (asked !== undefined) {
      const rel = posix.normalize(asked.replace(/^\/+/, ""));
      const full = resolvePath(context, rel);
      if (rel.startsWith("..") || !(full === context || full.startsWith(context + sep))) throw new ApiError("invalid_template", `file '${asked}' is outside the build context`);
      if (!existsSync(full) || !lstatSync(full).isFile()) throw new ApiError("invalid_template", `the build context has no file '${asked}'`);
      // A folder on the way may be a symlink out of the context (to a host folder): resolve it all.
      const root = realpathSync(context);
      if (!realpathSync(full).startsWith(root + sep)) throw new ApiError("invalid_template", `file '${asked}' is outside the build context`);
      return rel;
    }
    const found = DEFAULT_SPEC_FILES.find((f) => existsSync(join(context, f)) && lstatSync(join(context, f)).isFile());
    if (!found) throw new ApiError("invalid_template", `the build context has none of ${DEFAULT_SPEC_FILES.join(", ")}; name the spec or Dockerfile with \`file\``);
    return found;
  }

  /** Writes the body to `path`, refusing more than the configured limit; returns its size and hash. */
  private async receive(body: AsyncIterable<Uint8Array>, path: string): Promise<{ bytes: number; sha256: string }> {
    const limit = this.deps.config.maxBuildContextBytes;
    const out = createWriteStream(path, { mode: 0o600 });
    const hash = createHash("sha256");
    let bytes = 0;
    try {
      for await (const chunk of body) {
        bytes += chunk.byteLength;
        if (bytes > limit) throw new ApiError("payload_too_large", `the upload is larger than ${limit} bytes (STASIS_MAX_BUILD_CONTEXT_BYTES); leave large files out with .dockerignore`);
        hash.update(chunk);
        if (!out.write(chunk)) await once(out, "drain");
      }
    } finally {
      out.end();
      await once(out, "close");
    }
    return { bytes, sha256: hash.digest("hex") };
  }

  private workDir(): string {
    const dir = join(this.deps.config.templatesDir, ".builds", `${process.pid}-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  private async cleanup(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true }).catch((err: Error) => this.deps.log.warn({ dir, err: err.message }, "removing a build's work folder failed"));
  }

  private wrap<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof TemplateNotFoundError) throw new ApiError("template_not_found", err.message);
      if (err instanceof TemplateSettingsError) throw new ApiError("invalid_request", err.message);
      throw err;
    }
  }
}

/** A tar archive as tar writes it (ustar or GNU magic in the first header), or an empty one (zeros). */
export function isPlainTar(path: string): boolean {
  const header = Buffer.alloc(512);
  const fd = openSync(path, "r");
  try {
    const n = readSync(fd, header, 0, 512, 0);
    if (n < 512) return false;
  } finally {
    closeSync(fd);
  }
  return header.subarray(257, 262).toString("latin1") === "ustar" || header.every((b) => b === 0);
}
