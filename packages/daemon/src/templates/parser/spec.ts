// A spec (stasis.yaml, .yml or .json): validated with zod, errors at the line of the offending key.
import { CpuSchema, DiskMiBSchema, EnvSchema, MemoryMiBSchema, NetworkPolicySchema, TemplateNameSchema } from "@stasis/protocol";
import { Lexer, LineCounter, parseDocument, Parser, type Document } from "yaml";
import { z } from "zod";
import { TemplateSpecError, type BuildStep, type TemplateDefinition } from "../template-definition.js";
import { parseBaseImage } from "./base-image.js";
import { checkCopy, checkSize, ENV_NAME_RE, lineOfOffset, MAX_STEPS, oneLine, PACKAGE_RE, READY_TIMEOUT_MAX_MS, READY_TIMEOUT_MIN_MS, USER_RE } from "./checks.js";
import { check, didYouMean, formatPath, NodeLines, type Path } from "./spec-validation.js";

/** Nesting a spec may have (a real one has about 5). */
const MAX_DEPTH = 64;

const nonEmpty = z.string().trim().min(1);
const PackagesSchema = z
  .union([z.string(), z.array(z.string())], { error: "must be a list of Debian package names" })
  .transform((v) => (typeof v === "string" ? v.split(/\s+/).filter((s) => s !== "") : v))
  .pipe(
    z
      .array(z.string().regex(PACKAGE_RE, "is not a Debian package name (lowercase letters, digits, '+', '-', '.'; optionally =version)"))
      .min(1, "must name at least one package")
      .max(1000),
  );
// z.record drops a "__proto__" key silently; say so instead.
const EnvVarsSchema = z.preprocess((value, ctx) => {
  if (value !== null && typeof value === "object" && Object.hasOwn(value, "__proto__")) {
    ctx.addIssue({ code: "custom", message: '"__proto__" is not a valid variable name', path: ["__proto__"], input: value });
  }
  return value;
}, z.record(
  z.string().regex(ENV_NAME_RE, "is not a valid variable name: use letters, digits and '_', not starting with a digit"),
  z
    .union([z.string(), z.number(), z.boolean()], { error: 'must be a string, number or true/false (write "" for an empty value)' })
    .transform((v) => String(v)),
));
const UserSchema = z
  .union([z.string(), z.number().int().min(0)], { error: "must be a user name or uid, optionally :group" })
  .transform((v) => String(v).trim())
  .pipe(z.string().regex(USER_RE, "must be a user name or uid, optionally :group (e.g. user or 1000:1000)"));
const RunSchema = z.union([z.string().trim().min(1), z.array(z.string()).min(1)], {
  error: "must be a shell command (a string) or an exec-form list of strings",
});
const CopyObjectSchema = z
  .object({
    src: z.union([nonEmpty, z.array(nonEmpty).min(1)], { error: "must be a path or a list of paths in the build context" }),
    dest: nonEmpty,
    chown: UserSchema.nullish(),
  })
  .strict();

const SpecSchema = z
  .object({
    name: TemplateNameSchema.nullish(),
    from: z.string({ error: (iss) => (iss.input === undefined ? `is required: say what to build on, e.g. from: debian:bookworm or from: base` : undefined) }),
    packages: PackagesSchema.nullish(),
    env: EnvVarsSchema.nullish(),
    workdir: nonEmpty.nullish(),
    steps: z.array(z.unknown()).max(MAX_STEPS).nullish(),
    user: UserSchema.nullish(),
    start: nonEmpty.nullish(),
    ready: nonEmpty.nullish(),
    readyTimeoutMs: z.number().int().min(READY_TIMEOUT_MIN_MS).max(READY_TIMEOUT_MAX_MS).nullish(),
    resources: z.object({ cpu: CpuSchema.nullish(), memoryMiB: MemoryMiBSchema.nullish(), diskMiB: DiskMiBSchema.nullish() }).strict().nullish(),
    pool: z.number().int().min(0).max(64).nullish(),
    snapshot: z.boolean().nullish(),
    /** The egress policy of its sandboxes (a create's own policy goes over it). */
    network: NetworkPolicySchema.nullish(),
  })
  .strict();

const SPEC_KEYS: readonly string[] = SpecSchema.keyof().options;
const TOO_DEEP = "the spec is nested too deeply";
const STEP_KINDS = ["run", "copy", "packages", "env", "workdir", "user"] as const;

/** Parses a spec; errors name the line of the offending key or step. */
export function parseSpec(text: string, format: "yaml" | "json"): TemplateDefinition {
  text = checkSize(text);
  checkDepth(text);
  if (format === "json") {
    try {
      JSON.parse(text);
    } catch (err) {
      if (err instanceof RangeError) throw new TemplateSpecError(TOO_DEEP, null);
      const message = err instanceof Error ? err.message : String(err);
      const position = /at position (\d+)/.exec(message)?.[1];
      const line = position === undefined ? null : lineOfOffset(text, Number(position));
      throw new TemplateSpecError(`not valid JSON: ${message.replace(/\s*(in JSON )?at position \d+.*$/s, "")}`, line);
    }
  }
  const lineCounter = new LineCounter();
  let doc: Document;
  let data: unknown;
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, logLevel: "error" });
    const error = doc.errors[0];
    if (error?.message.includes("call stack")) throw new TemplateSpecError(TOO_DEEP, null);
    if (error !== undefined) {
      const line = lineCounter.linePos(error.pos[0]).line;
      if (error.code === "MULTIPLE_DOCS") throw new TemplateSpecError("the spec must be a single YAML document: remove the extra ---", line);
      if (error.code === "DUPLICATE_KEY") throw new TemplateSpecError(`duplicate key ${keyAt(text, error.pos[0])}`, line);
      throw new TemplateSpecError(`not valid ${format === "json" ? "JSON" : "YAML"}: ${error.message}`, line);
    }
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    if (err instanceof TemplateSpecError) throw err;
    if (err instanceof RangeError) throw new TemplateSpecError(TOO_DEEP, null);
    throw new TemplateSpecError(`the spec could not be read: ${err instanceof Error ? err.message : String(err)}`, null);
  }
  if (data === null || data === undefined) throw new TemplateSpecError("the spec is empty: it needs at least `from`, e.g. from: debian:bookworm", null);
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new TemplateSpecError("the spec must be a map of keys (from, packages, steps, start, ...), not a list or a single value", 1);
  }

  const lines = new NodeLines(doc, lineCounter);
  const spec = check(SpecSchema, data, [], lines, { "": SPEC_KEYS, resources: ["cpu", "memoryMiB", "diskMiB"], network: ["internet", "allowOut", "denyOut"] });
  const fromLine = lines.of(["from"]);
  const steps: BuildStep[] = [];
  const add = (step: BuildStep): void => {
    if (steps.length >= MAX_STEPS) throw new TemplateSpecError(`too many steps: at most ${MAX_STEPS}; combine RUN commands or packages`, step.line);
    steps.push(step);
  };
  if (spec.packages) add(packagesStep(spec.packages, lines.of(["packages"])));
  if (spec.env) add(envStep(checkEnv(spec.env, ["env"], lines), lines.of(["env"])));
  if (spec.workdir) add({ kind: "workdir", path: spec.workdir, line: lines.of(["workdir"]), text: oneLine(`WORKDIR ${spec.workdir}`) });
  for (const [i, item] of (spec.steps ?? []).entries()) add(specStep(item, ["steps", i], lines));
  if (spec.user) add({ kind: "user", user: spec.user, line: lines.of(["user"]), text: oneLine(`USER ${spec.user}`) });

  const resources: TemplateDefinition["resources"] = {};
  for (const key of ["cpu", "memoryMiB", "diskMiB"] as const) {
    const value = spec.resources?.[key];
    if (value !== null && value !== undefined) resources[key] = value;
  }
  return {
    source: "spec",
    name: spec.name ?? null,
    from: parseBaseImage(spec.from, fromLine),
    fromLine,
    steps,
    start: spec.start ?? null,
    ready: spec.ready ?? null,
    readyTimeoutMs: spec.readyTimeoutMs ?? null,
    resources,
    pool: spec.pool ?? null,
    snapshot: spec.snapshot ?? null,
    network: spec.network ?? null,
  };
}

/**
 * Rejects deep nesting before composing: the composer recurses per level, and a stack overflow can kill
 * the process outright (V8 aborts when it happens while compiling a regex). The CST parser is iterative.
 */
function checkDepth(text: string): void {
  const parser = new Parser();
  for (const lexeme of new Lexer().lex(text)) {
    for (const _token of parser.next(lexeme)) {
      // drained only to advance the parser
    }
    if (parser.stack.length > MAX_DEPTH) throw new TemplateSpecError(TOO_DEEP, null);
  }
}

function specStep(item: unknown, path: Path, lines: NodeLines): BuildStep {
  const line = lines.of(path);
  const kinds = STEP_KINDS.join(", ");
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    throw new TemplateSpecError(`${formatPath(path)}: each step is a map with one key (${kinds}), e.g. - run: make`, line);
  }
  const keys = Object.keys(item);
  const key = keys[0];
  if (key === undefined) throw new TemplateSpecError(`${formatPath(path)}: the step is empty: give it one of ${kinds}`, line);
  if (keys.length > 1) {
    throw new TemplateSpecError(
      `${formatPath(path)}: a step has exactly one key, this one has ${keys.join(", ")}: make each its own list item, or indent a step's fields under it`,
      line,
    );
  }
  const value: unknown = (item as Record<string, unknown>)[key];
  const at = [...path, key];
  switch (key) {
    case "run": {
      const command = check(RunSchema, value, at, lines);
      return { kind: "run", command, line, text: oneLine(`RUN ${typeof command === "string" ? command : JSON.stringify(command)}`) };
    }
    case "copy":
      return copyStep(value, at, line, lines);
    case "packages":
      return packagesStep(check(PackagesSchema, value, at, lines), line);
    case "env":
      return envStep(checkEnv(check(EnvVarsSchema, value, at, lines), at, lines), line);
    case "workdir": {
      const path = check(nonEmpty, value, at, lines);
      return { kind: "workdir", path, line, text: oneLine(`WORKDIR ${path}`) };
    }
    case "user": {
      const user = check(UserSchema, value, at, lines);
      return { kind: "user", user, line, text: oneLine(`USER ${user}`) };
    }
    default: {
      const topLevel = SPEC_KEYS.includes(key) ? `; ${key} is a top-level key, not a step` : "";
      const hint = topLevel || didYouMean(key, STEP_KINDS);
      throw new TemplateSpecError(`${formatPath(path)}: unknown step "${key}" (a step is one of ${kinds})${hint}`, lines.of(at));
    }
  }
}

function copyStep(value: unknown, path: Path, line: number | null, lines: NodeLines): BuildStep {
  let sources: string[];
  let dest: string;
  let chown: string | null = null;
  if (typeof value === "string") {
    const words = value.split(/\s+/).filter((w) => w !== "");
    if (words.some((w) => w.startsWith("--"))) {
      throw new TemplateSpecError(`${formatPath(path)}: options go in the map form: copy: { src: ..., dest: ..., chown: user }`, line);
    }
    if (words.length < 2) throw new TemplateSpecError(`${formatPath(path)}: write "SRC... DEST", e.g. copy: app.py /app/app.py`, line);
    dest = words.pop() as string;
    sources = words;
  } else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const copy = check(CopyObjectSchema, value, path, lines, { "": ["src", "dest", "chown"] });
    sources = typeof copy.src === "string" ? [copy.src] : copy.src;
    dest = copy.dest;
    chown = copy.chown ?? null;
  } else {
    throw new TemplateSpecError(`${formatPath(path)}: write "SRC... DEST" or a map { src, dest, chown }`, line);
  }
  checkCopy("copy", sources, dest, line);
  const text = `COPY ${chown === null ? "" : `--chown=${chown} `}${[...sources, dest].join(" ")}`;
  return { kind: "copy", sources, dest, chown, line, text: oneLine(text) };
}

function packagesStep(names: string[], line: number | null): BuildStep {
  return { kind: "packages", names, line, text: oneLine(`PACKAGES ${names.join(" ")}`) };
}

function envStep(vars: Record<string, string>, line: number | null): BuildStep {
  const pairs = Object.entries(vars).map(([k, v]) => `${k}=${v === "" || /[\s"'\\]/.test(v) ? JSON.stringify(v) : v}`);
  return { kind: "env", vars, line, text: oneLine(`ENV ${pairs.join(" ")}`) };
}

function checkEnv(vars: Record<string, string>, path: Path, lines: NodeLines): Record<string, string> {
  return check(EnvSchema, vars, path, lines);
}

/** The map key written at `offset`, for messages. */
function keyAt(text: string, offset: number): string {
  const token = /"(?:[^"\\]|\\.)*"|'[^']*'|[^:\s]+/y;
  token.lastIndex = offset;
  const key = token.exec(text)?.[0] ?? "";
  return /^["']/.test(key) ? `"${key.slice(1, -1)}"` : `"${key}"`;
}
