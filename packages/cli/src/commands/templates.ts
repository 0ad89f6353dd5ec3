import { existsSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { StasisError, Templates, type Template, type TemplateBuildEvent, type UpdateTemplateRequest } from "@stasis/sdk";
import type { CommandOf, TemplateResourceFlags } from "../command.js";
import { bytes, errorLine, note, printJson, table, time, write, type Context } from "../output.js";
import { UsageError } from "../usage-error.js";

const BUILD_TOPIC = ["template", "build"];

export async function build(cmd: CommandOf<"template.build">, ctx: Context): Promise<number> {
  if (!isDirectory(cmd.context)) {
    // `template build base` built the built-in template before builds went through the daemon.
    const nameLike = !existsSync(cmd.context) && /^[a-z0-9][a-z0-9._-]*$/.test(cmd.context);
    const hint = nameLike ? `; to build the built-in template '${cmd.context}' on this host: stasis template build --builtin ${cmd.context}` : "";
    throw new UsageError(`build context '${cmd.context}' is not a directory${hint}`, BUILD_TOPIC);
  }
  const file = contextFile(cmd.context, cmd.file);
  return follow(ctx, "Built", (onEvent, signal) =>
    Templates.build({
      context: cmd.context,
      name: cmd.name,
      ...(file !== undefined ? { file } : {}),
      ...(cmd.noCache ? { noCache: true } : {}),
      ...(cmd.snapshot !== undefined ? { snapshot: cmd.snapshot } : {}),
      ...cmd.resources,
      onEvent,
      signal,
      ...ctx.conn,
    }),
  );
}

export async function importImage(cmd: CommandOf<"template.import">, ctx: Context): Promise<number> {
  return follow(ctx, "Imported", (onEvent, signal) =>
    Templates.import({ archive: cmd.archive, name: cmd.name, ...(cmd.image !== undefined ? { image: cmd.image } : {}), ...cmd.resources, onEvent, signal, ...ctx.conn }),
  );
}

/**
 * Runs a build or import, showing its events as they come (or as NDJSON on stdout with --json), then a
 * summary line; a failure prints where it happened. Ctrl-C ends the request.
 */
async function follow(
  ctx: Context,
  verb: string,
  start: (onEvent: (event: TemplateBuildEvent) => void, signal: AbortSignal) => Promise<Template>,
): Promise<number> {
  const controller = new AbortController();
  const interrupt = () => controller.abort(new Error("interrupted"));
  let done: Extract<TemplateBuildEvent, { type: "done" }> | undefined;
  const onEvent = (event: TemplateBuildEvent) => {
    if (event.type === "done") done = event;
    if (ctx.json) ctx.io.stdout.write(`${JSON.stringify(event)}\n`);
    else showEvent(ctx, event);
  };
  process.on("SIGINT", interrupt);
  try {
    await start(onEvent, controller.signal);
  } catch (err) {
    if (controller.signal.aborted) {
      note(ctx, "interrupted");
      return 130;
    }
    note(ctx, errorLine(err));
    const at = failedAt(err);
    if (at) note(ctx, `  at ${at}`);
    return 1;
  } finally {
    process.off("SIGINT", interrupt);
  }
  if (!ctx.json && done) await write(ctx.io.stdout, `${summary(verb, done)}\n`);
  return 0;
}

function showEvent(ctx: Context, event: TemplateBuildEvent): void {
  if (event.type === "step") note(ctx, `Step ${event.step}/${event.total} : ${event.instruction}${event.cached ? " (cached)" : ""}`);
  else if (event.type === "log") for (const line of event.data.replace(/\r?\n$/, "").split("\n")) note(ctx, `  ${line}`);
  else if (event.type === "progress") note(ctx, ` ---> ${event.message}`);
}

/** "Built py:3 in 12.3s: 2 steps cached, 3 built; 48 MiB; snapshot: yes". */
function summary(verb: string, done: Extract<TemplateBuildEvent, { type: "done" }>): string {
  const t = done.template;
  const steps = done.cachedSteps + done.builtSteps > 0 ? ` ${plural(done.cachedSteps, "step")} cached, ${done.builtSteps} built;` : "";
  return `${verb} ${t.ref} in ${elapsed(done.durationMs)}:${steps} ${bytes(t.sizeBytes)}; snapshot: ${t.snapshot ? "yes" : "no"}`;
}

/** Where a build failed, from the error's details: "step 2 (RUN false), line 4". */
function failedAt(err: unknown): string | undefined {
  if (!(err instanceof StasisError) || !err.details) return undefined;
  const { step, instruction, line } = err.details;
  const parts = [
    typeof step === "number" ? `step ${step}${typeof instruction === "string" ? ` (${instruction})` : ""}` : undefined,
    typeof line === "number" ? `line ${line}` : undefined,
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : undefined;
}

/**
 * `-f` names the file relative to DIR, as the daemon reads it; a path to it from here works too when it
 * lies inside DIR (as `docker build -f` takes it).
 */
function contextFile(context: string, file: string | undefined): string | undefined {
  if (file === undefined || existsSync(join(context, file))) return file;
  const fromHere = resolve(file);
  if (!existsSync(fromHere)) return file;
  const inside = relative(resolve(context), fromHere);
  if (inside === "" || inside === ".." || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    throw new UsageError(`${file} is not inside the build context '${context}'`, BUILD_TOPIC);
  }
  return inside.split(sep).join("/");
}

export async function list(_cmd: CommandOf<"template.list">, ctx: Context): Promise<number> {
  const templates = await Templates.list(ctx.conn);
  if (ctx.json) {
    await printJson(ctx, templates);
    return 0;
  }
  const rows = templates.map((t) => [
    t.name,
    String(t.version),
    t.latest ? "yes" : "-",
    t.source,
    t.from ?? "-",
    bytes(t.sizeBytes),
    t.snapshot ? "yes" : "no",
    String(t.pool),
    time(t.builtAt),
  ]);
  await write(ctx.io.stdout, table(["NAME", "VERSION", "LATEST", "SOURCE", "FROM", "SIZE", "SNAPSHOT", "POOL", "BUILT"], rows));
  return 0;
}

export async function get(cmd: CommandOf<"template.get">, ctx: Context): Promise<number> {
  const template = await Templates.get(cmd.ref, ctx.conn);
  if (ctx.json) await printJson(ctx, template);
  else await write(ctx.io.stdout, describe(template));
  return 0;
}

export async function set(cmd: CommandOf<"template.set">, ctx: Context): Promise<number> {
  const template = await Templates.update(cmd.ref, updateRequest(cmd.resources), ctx.conn);
  if (ctx.json) await printJson(ctx, template);
  else await write(ctx.io.stdout, `${template.ref} pool=${template.pool} ${resources(template)}\n`);
  return 0;
}

export async function rm(cmd: CommandOf<"template.rm">, ctx: Context): Promise<number> {
  let failed = false;
  // One at a time, reporting each, as `sandbox kill` does.
  for (const ref of cmd.refs) {
    try {
      await Templates.delete(ref, ctx.conn);
      note(ctx, `deleted ${ref}`);
    } catch (err) {
      failed = true;
      note(ctx, errorLine(err));
    }
  }
  return failed ? 1 : 0;
}

function updateRequest(flags: TemplateResourceFlags): UpdateTemplateRequest {
  const { pool, ...rest } = flags;
  return { ...(pool !== undefined ? { pool } : {}), ...(Object.keys(rest).length ? { resources: rest } : {}) };
}

function resources(t: Template): string {
  return `cpu=${t.resources.cpu} memory=${t.resources.memoryMiB} MiB disk=${t.resources.diskMiB} MiB`;
}

function describe(t: Template): string {
  const env =
    Object.entries(t.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ") || "-";
  const snapshot = t.snapshot ? `taken ${time(t.snapshot.takenAt)} (memory ${bytes(t.snapshot.memoryBytes)}, disk ${bytes(t.snapshot.diskBytes)})` : "-";
  const fields: [string, string][] = [
    ["ref", `${t.ref}${t.latest ? " (latest)" : ""}`],
    ["source", `${t.source}${t.from ? ` from ${t.from}` : ""}`],
    ["built", `${time(t.builtAt)}${t.buildMs !== null ? ` in ${elapsed(t.buildMs)}` : ""}`],
    ["size", `${bytes(t.sizeBytes)} in ${plural(t.layers, "layer")}`],
    ["env", env],
    ["workdir", t.workdir ?? "-"],
    ["user", t.user ?? "-"],
    ["start", t.start ?? "-"],
    ["ready", t.ready ?? "-"],
    ["resources", resources(t)],
    ["pool", String(t.pool)],
    ["snapshot", snapshot],
  ];
  return fields.map(([k, v]) => `${`${k}:`.padEnd(10)} ${v}`).join("\n") + "\n";
}

function elapsed(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, "0")}s`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
