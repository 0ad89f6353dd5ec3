import { posix } from "node:path";
import { CpuSchema, DiskMiBSchema, EnvSchema, MemoryMiBSchema, TemplateNameSchema, TemplateRefSchema } from "@stasis/protocol";
import { isAlias, isMap, isScalar, isSeq, Lexer, LineCounter, parseDocument, Parser, type Document } from "yaml";
import { z } from "zod";
import { DEFAULT_PATH } from "../runtime/oci-spec.js";
import { TemplateSpecError, type BaseImage, type BuildStep, type TemplateDefinition } from "./template-definition.js";

/** Files a build looks for in its context when none is named, in this order. */
export const DEFAULT_SPEC_FILES: readonly string[] = ["stasis.yaml", "stasis.yml", "stasis.json", "Dockerfile"];

export const MAX_SPEC_BYTES = 1024 * 1024;
export const MAX_STEPS = 500;
const MAX_TEXT = 200;
/** Nesting a spec may have (a real one has about 5). */
const MAX_DEPTH = 64;
const READY_TIMEOUT_MIN_MS = 1000;
const READY_TIMEOUT_MAX_MS = 600_000;

const DEBIAN_SUITES: Record<string, string> = { bookworm: "bookworm", "12": "bookworm", trixie: "trixie", "13": "trixie" };
const DEBIAN_HINT = "debian:bookworm (12) or debian:trixie (13)";
const EXAMPLE_FROM = "debian:bookworm";

/** `user`, `uid`, `user:group` or `uid:gid`, as USER and --chown take them. */
const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?)?$/;
/** A Debian package, optionally `:arch`, `=version` or `/release`; never an apt-get option. */
const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?(?:=[A-Za-z0-9.+~:-]+|\/[A-Za-z0-9.-]+)?$/;
const ENV_NAME_RE = /^(?!__proto__$)[A-Za-z_][A-Za-z0-9_.-]*$/;
const WILDCARD_RE = /[*?[]/;

export type TemplateFileKind = "yaml" | "json" | "dockerfile";

/** What a file is by its name: a YAML or JSON spec, a Dockerfile, or null when neither. */
export function templateFileKind(fileName: string): TemplateFileKind | null {
  const base = (fileName.split("/").pop() ?? fileName).toLowerCase();
  if (base.endsWith(".yaml") || base.endsWith(".yml")) return "yaml";
  if (base.endsWith(".json")) return "json";
  for (const name of ["dockerfile", "containerfile"]) {
    if (base === name || base.endsWith(`.${name}`) || base.startsWith(`${name}.`)) return "dockerfile";
  }
  return null;
}

/** Parses a spec or a Dockerfile, picked by its file name. */
export function parseTemplateFile(fileName: string, text: string): TemplateDefinition {
  const kind = templateFileKind(fileName);
  if (kind === null) {
    throw new TemplateSpecError(
      `can't tell what "${fileName}" is: name a spec *.yaml, *.yml or *.json, or a Dockerfile (Dockerfile, *.Dockerfile, Dockerfile.* or Containerfile)`,
      null,
    );
  }
  return kind === "dockerfile" ? parseDockerfile(text) : parseSpec(text, kind);
}

/**
 * Maps what FROM or `from` names to a base: `debian`, `debian:<suite|number>[-slim]`, `bookworm`, `trixie`
 * → a Debian release; `template:<ref>` or any template ref (`name`, `name:version`) → that template.
 */
export function parseBaseImage(value: string, line: number | null = null): BaseImage {
  const image = value.trim();
  if (image === "") throw new TemplateSpecError(`the base is empty: name one, e.g. ${DEBIAN_HINT} or a template such as base`, line);
  if (image.startsWith("template:")) {
    const ref = image.slice("template:".length);
    if (!TemplateRefSchema.safeParse(ref).success) {
      throw new TemplateSpecError(`"${image}" does not name a template: use template:<name> or template:<name>:<version>, e.g. template:myapp:3`, line);
    }
    return { kind: "template", ref };
  }
  let tag: string | null = null;
  if (image === "debian") tag = "bookworm";
  else if (image.startsWith("debian:")) tag = image.slice("debian:".length);
  else if (/^(bookworm|trixie)(-slim)?$/.test(image)) tag = image;
  if (tag !== null) {
    const release = tag.replace(/-slim$/, "");
    const major = /^(\d+)(?:\.\d+)*$/.exec(release)?.[1];
    const suite = DEBIAN_SUITES[major ?? release];
    if (suite === undefined) throw new TemplateSpecError(`Debian "${tag}" is not supported: use ${DEBIAN_HINT}`, line);
    return { kind: "debian", suite };
  }
  if (image === "scratch") {
    throw new TemplateSpecError(
      `"scratch" is not supported: a template needs a root filesystem. Start from a Debian base (${DEBIAN_HINT}), or build the image with Docker, \`docker save\` it and load the tarball with \`stasis template import\``,
      line,
    );
  }
  if (TemplateRefSchema.safeParse(image).success) return { kind: "template", ref: image };
  throw new TemplateSpecError(
    `"${image}" is neither a Debian base nor a template, and images can't be pulled: the daemon does not reach registries. ` +
      `Start from a Debian base (${DEBIAN_HINT}) and install what you need with packages or RUN steps, ` +
      `or import the image: \`docker save ${image} -o image.tar\`, then \`stasis template import\` the tarball`,
    line,
  );
}

/** How a base is written back, e.g. in a template's `from`. */
export function formatBaseImage(base: BaseImage): string {
  return base.kind === "debian" ? `debian:${base.suite}` : base.ref;
}

// ---------------------------------------------------------------------------------------------------------------
// Specs (YAML or JSON)
// ---------------------------------------------------------------------------------------------------------------

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
  })
  .strict();

const SPEC_KEYS: readonly string[] = SpecSchema.keyof().options;
const TOO_DEEP = "the spec is nested too deeply";
const STEP_KINDS = ["run", "copy", "packages", "env", "workdir", "user"] as const;
type Path = readonly PropertyKey[];

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
  const spec = check(SpecSchema, data, [], lines, { "": SPEC_KEYS, resources: ["cpu", "memoryMiB", "diskMiB"] });
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

/**
 * Validates with zod; the first problem in the file (by line) becomes a TemplateSpecError at its line.
 * `knownKeys` lists each map's keys by its path below `path` ("" for the value itself), for unknown-key hints.
 */
function check<S extends z.ZodType>(schema: S, value: unknown, path: Path, lines: NodeLines, knownKeys: Record<string, readonly string[]> = {}): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const at = [...path, ...issue.path];
    if (issue.code === "unrecognized_keys") {
      const key = issue.keys[0] ?? "";
      const known = knownKeys[formatPath(issue.path)];
      const where = at.length === 0 ? "" : ` in ${formatPath(at)}`;
      const hint = known ? didYouMean(key, known) || ` (expected one of: ${known.join(", ")})` : "";
      return { line: lines.of([...at, key]), message: `unknown key "${key}"${where}${hint}` };
    }
    return { line: lines.of(at), message: `${formatPath(at)}: ${issueMessage(issue)}` };
  });
  problems.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
  const first = problems[0] as { line: number | null; message: string };
  throw new TemplateSpecError(first.message, first.line);
}

function issueMessage(issue: z.core.$ZodIssue): string {
  const value = issue.input;
  switch (issue.code) {
    case "invalid_type":
      if (value === undefined) return issue.message.startsWith("is required") ? issue.message : "is required";
      if (issue.expected === "int") return "must be a whole number";
      return `must be ${describeType(issue.expected)} (got ${describeValue(value)})`;
    case "too_small":
    case "too_big": {
      const small = issue.code === "too_small";
      const bound = Number(small ? issue.minimum : issue.maximum);
      if (!issue.message.startsWith("Too ")) return issue.message;
      if (issue.origin === "string") return small && bound === 1 ? "must not be empty" : `must be ${small ? "at least" : "at most"} ${bound} characters`;
      if (issue.origin === "array") return `must have ${small ? "at least" : "at most"} ${bound} item${bound === 1 ? "" : "s"}`;
      return `must be ${small ? (issue.inclusive ? "at least" : "more than") : issue.inclusive ? "at most" : "less than"} ${bound}`;
    }
    case "invalid_key": {
      const inner = issue.issues[0];
      return inner === undefined ? issue.message : issueMessage({ ...inner, input: issue.input } as z.core.$ZodIssue);
    }
    case "invalid_format":
      return `${describeValue(value)} ${/^(is|must) /.test(issue.message) ? issue.message : `is not valid: ${issue.message}`}`;
    default:
      return issue.message;
  }
}

function describeType(expected: string): string {
  return ({ string: "a string", number: "a number", boolean: "true or false", object: "a map", array: "a list", record: "a map" } as Record<string, string>)[expected] ?? expected;
}

function describeValue(value: unknown): string {
  if (value === null) return "nothing";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "object") return value instanceof Uint8Array ? "binary data" : "a map";
  return String(value);
}

function formatPath(path: Path): string {
  let out = "";
  for (const seg of path) out += typeof seg === "number" ? `[${seg}]` : out === "" ? String(seg) : `.${String(seg)}`;
  return out;
}

function didYouMean(key: string, known: readonly string[]): string {
  let best: string | null = null;
  let bestDistance = 3;
  const k = key.toLowerCase();
  for (const candidate of known) {
    const c = candidate.toLowerCase();
    const d = k.length >= 3 && (c.startsWith(k) || k.startsWith(c)) ? 0 : editDistance(k, c);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best === null ? "" : `; did you mean "${best}"?`;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3 || a.length > 64 || b.length > 64) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 99;
}

/** Finds the line of a value in the YAML document by its path (a map entry: the line of its key). */
class NodeLines {
  constructor(
    private readonly doc: Document,
    private readonly counter: LineCounter,
  ) {}

  /** Falls back to the nearest ancestor that exists (e.g. the map a required key is missing from). */
  of(path: Path): number | null {
    let node: unknown = this.doc.contents;
    let line = this.lineOf(node);
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
        if (pair === undefined) break;
        line = this.lineOf(pair.key) ?? this.lineOf(pair.value) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === "number") {
        const item: unknown = node.items[seg];
        if (item === undefined) break;
        line = this.lineOf(item) ?? line;
        node = item;
      } else {
        break;
      }
    }
    return line;
  }

  private lineOf(node: unknown): number | null {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? this.counter.linePos(range[0]).line : null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Dockerfiles
// ---------------------------------------------------------------------------------------------------------------

interface Instruction {
  /** Upper-cased. */
  keyword: string;
  /** As written. */
  word: string;
  /** Arguments with continuations joined as Docker joins them (backslash-newline removed). */
  args: string;
  /** For logs: continuation lines trimmed and joined by a space. */
  text: string;
  line: number;
}

type CommandForm = { exec: string[] } | { shell: string };

export interface DockerfileOptions {
  /**
   * Variables ENV, WORKDIR, USER and COPY may refer to before any ENV sets them: the base's environment.
   * Default: PATH as sandboxes get it, so `ENV PATH=/opt/bin:$PATH` works.
   */
  baseEnv?: Record<string, string>;
}

/** Parses the Dockerfile subset Stasis builds: one stage, no ARG, no registries. */
export function parseDockerfile(text: string, options: DockerfileOptions = {}): TemplateDefinition {
  text = checkSize(text);
  const env: Record<string, string> = { PATH: DEFAULT_PATH, ...options.baseEnv };
  const steps: BuildStep[] = [];
  let from: BaseImage | null = null;
  let fromLine: number | null = null;
  let cmd: CommandForm | null = null;
  let entrypoint: CommandForm | null = null;
  let ready: string | null = null;
  let readyTimeoutMs: number | null = null;

  const add = (step: BuildStep): void => {
    if (steps.length >= MAX_STEPS) throw new TemplateSpecError(`too many steps: at most ${MAX_STEPS}; combine RUN commands`, step.line);
    steps.push(step);
  };

  for (const ins of splitInstructions(text)) {
    const { keyword, args, line } = ins;
    const stepText = truncate(ins.text);
    const fail = (message: string): never => {
      throw new TemplateSpecError(message, line);
    };
    if (!/^[A-Za-z]+$/.test(keyword)) {
      fail(`"${ins.word}" is not an instruction; if it continues the previous line, end that line with a backslash`);
    }
    if (keyword === "ARG") fail("ARG is not supported: build arguments can't be passed to a template build; set the value with ENV NAME=value instead");
    if (!KNOWN_INSTRUCTIONS.has(keyword)) fail(`unknown instruction ${keyword}`);
    if (from === null && keyword !== "FROM") fail(`the first instruction must be FROM (found ${keyword}), e.g. FROM ${EXAMPLE_FROM}`);
    if (args === "") fail(`${keyword} needs arguments`);

    switch (keyword) {
      case "FROM": {
        if (from !== null) fail(MULTI_STAGE);
        const words = args.split(/\s+/);
        const first = words[0] ?? "";
        if (first.startsWith("--")) {
          if (/^--platform(=|$)/i.test(first)) fail("FROM --platform is not supported: templates are built for the host's architecture; remove the flag");
          fail(`FROM ${first} is not supported`);
        }
        if (words.length === 3 && words[1]?.toLowerCase() === "as") fail(MULTI_STAGE);
        if (words.length !== 1) fail(`FROM takes a single base, e.g. FROM ${EXAMPLE_FROM}`);
        if (first.includes("$")) fail("variables are not supported in FROM (there is no ARG): write the base out");
        from = parseBaseImage(first, line);
        fromLine = line;
        break;
      }
      case "RUN": {
        const flag = /^--[A-Za-z-]+/.exec(args)?.[0];
        if (flag !== undefined) fail(`RUN ${flag} is not supported: remove it (a RUN step runs plainly in the build sandbox)`);
        const exec = execForm(args, "RUN", line, false);
        if (exec !== null) {
          if (exec.length === 0) fail("RUN [] has no command: name the program and its arguments");
          add({ kind: "run", command: exec, line, text: stepText });
        } else {
          if (hasHeredoc(args)) fail("heredocs (<<EOF) are not supported: put the script in a file, COPY it and RUN it, or use printf");
          add({ kind: "run", command: args, line, text: stepText });
        }
        break;
      }
      case "COPY":
      case "ADD":
        // ADD is COPY here: URLs are refused and a local tar is copied as is, not unpacked.
        add(dockerCopy(keyword, args, env, line, stepText));
        break;
      case "ENV": {
        const vars = parseEnvInstruction(args, env, line);
        const checked = EnvSchema.safeParse(vars);
        if (!checked.success) fail(`ENV: ${checked.error.issues[0]?.message ?? "invalid variables"}`);
        Object.assign(env, vars);
        add({ kind: "env", vars, line, text: stepText });
        break;
      }
      case "WORKDIR": {
        const path = expandWord(args, env, true, line).trim();
        if (path === "") fail("WORKDIR is empty after substituting variables: give a directory, e.g. WORKDIR /app");
        add({ kind: "workdir", path, line, text: stepText });
        break;
      }
      case "USER": {
        const user = expandWord(args, env, true, line).trim();
        if (!USER_RE.test(user)) fail(`USER "${user}" is not a user name or uid (optionally :group), e.g. USER user or USER 1000:1000`);
        add({ kind: "user", user, line, text: stepText });
        break;
      }
      case "CMD":
        cmd = commandForm(args, "CMD", line);
        break;
      case "ENTRYPOINT":
        entrypoint = commandForm(args, "ENTRYPOINT", line);
        break;
      case "HEALTHCHECK": {
        const health = parseHealthcheck(args, line);
        ready = health.ready;
        readyTimeoutMs = health.readyTimeoutMs;
        break;
      }
      case "EXPOSE":
      case "LABEL":
      case "MAINTAINER":
      case "STOPSIGNAL":
        break; // metadata with no meaning for a sandbox
      case "SHELL":
        fail('SHELL is not supported: RUN always uses /bin/sh -c; for bash, write RUN ["bash", "-c", "..."] or RUN bash -c \'...\'');
        break;
      case "VOLUME":
        fail("VOLUME is not supported: a sandbox's whole filesystem persists already; remove it");
        break;
      case "ONBUILD":
        fail("ONBUILD is not supported: put the instructions in the templates that build on this one");
        break;
      default:
        fail(`unknown instruction ${keyword}`);
    }
  }
  if (from === null) throw new TemplateSpecError(`the Dockerfile has no FROM: start it with e.g. FROM ${EXAMPLE_FROM}`, null);
  return {
    source: "dockerfile",
    name: null,
    from,
    fromLine,
    steps,
    start: startCommand(entrypoint, cmd),
    ready,
    readyTimeoutMs,
    resources: {},
    pool: null,
    snapshot: null,
  };
}

const KNOWN_INSTRUCTIONS = new Set(
  ["FROM", "RUN", "COPY", "ADD", "ENV", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "HEALTHCHECK", "EXPOSE", "LABEL", "MAINTAINER", "STOPSIGNAL", "SHELL", "VOLUME", "ONBUILD"],
);

const MULTI_STAGE =
  "multi-stage builds are not supported: use one FROM (without AS) and build everything in this stage, or build the image with Docker, `docker save` it and load it with `stasis template import`";

/** Splits into instructions: comments and blank lines dropped, continuations joined (comment lines inside skipped, as Docker does). */
function splitInstructions(text: string): Instruction[] {
  const lines = text.split(/\r\n|\r|\n/);
  const out: Instruction[] = [];
  let i = 0;
  // Parser directives: `# name=value` lines at the very top.
  for (; i < lines.length; i++) {
    const m = /^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=(.*)$/.exec(lines[i] ?? "");
    if (!m) break;
    if (m[1]?.toLowerCase() === "escape" && m[2]?.trim() !== "\\") {
      throw new TemplateSpecError("the escape directive is not supported: remove it and escape with a backslash", i + 1);
    }
  }
  const continues = /\\[ \t]*$/;
  while (i < lines.length) {
    const raw = lines[i] ?? "";
    const line = i + 1;
    i++;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    // Only the last line read is tested for a continuation, to stay linear.
    const pieces = [raw.trimStart()];
    const parts = [trimmed];
    for (let last = pieces[0] as string; continues.test(last); ) {
      pieces[pieces.length - 1] = last.replace(continues, "");
      parts[parts.length - 1] = (parts[parts.length - 1] ?? "").replace(continues, "").trimEnd();
      // Skip comment and blank lines inside the continuation; stop at the end of the file.
      while (i < lines.length && /^\s*(#.*)?$/.test(lines[i] ?? "")) i++;
      if (i >= lines.length) break;
      last = lines[i] ?? "";
      i++;
      pieces.push(last);
      parts.push(last.trim());
    }
    const m = /^(\S+)\s*([\s\S]*)$/.exec(pieces.join("").trimStart());
    if (m === null) continue; // a lone backslash
    out.push({ keyword: (m[1] ?? "").toUpperCase(), word: m[1] ?? "", args: (m[2] ?? "").trim(), text: parts.filter((p) => p !== "").join(" "), line });
  }
  return out;
}

/** Docker's exec form: a JSON array of strings; null for shell form. */
function execForm(args: string, keyword: string, line: number, strict: boolean): string[] | null {
  if (!args.startsWith("[")) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    // RUN [ -f x ] is a shell test; elsewhere a bracketed argument is a broken exec form.
    if (!strict || !args.endsWith("]")) return null;
    throw new TemplateSpecError(`${keyword} ${args} is not valid JSON: write the exec form with double quotes, e.g. ${keyword} ["python3", "app.py"], or drop the brackets`, line);
  }
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string")) {
    throw new TemplateSpecError(`${keyword}: the exec form must be a JSON list of strings, e.g. ${keyword} ["python3", "app.py"]`, line);
  }
  return parsed as string[];
}

function commandForm(args: string, keyword: string, line: number): CommandForm {
  const exec = execForm(args, keyword, line, true);
  return exec === null ? { shell: args } : { exec };
}

/** As Docker: exec ENTRYPOINT gets CMD's arguments appended (a shell CMD as sh -c); shell ENTRYPOINT ignores CMD. */
function startCommand(entrypoint: CommandForm | null, cmd: CommandForm | null): string | null {
  const cmdArgs = cmd === null ? [] : "exec" in cmd ? cmd.exec : ["/bin/sh", "-c", cmd.shell];
  if (entrypoint !== null && "shell" in entrypoint) return entrypoint.shell;
  // ENTRYPOINT [] means none; CMD alone then runs as written.
  const entry = entrypoint === null ? [] : entrypoint.exec;
  if (entry.length === 0 && cmd !== null && "shell" in cmd) return cmd.shell;
  const argv = [...entry, ...cmdArgs];
  return argv.length === 0 ? null : argv.map(shellQuote).join(" ");
}

export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

function hasHeredoc(args: string): boolean {
  return /(?:^|\s)\d*<<-?(["']?)[A-Za-z_][A-Za-z0-9_]*\1(?=\s|$)/.test(args);
}

function dockerCopy(keyword: "COPY" | "ADD", args: string, env: Record<string, string>, line: number, text: string): BuildStep {
  const fail = (message: string): never => {
    throw new TemplateSpecError(message, line);
  };
  let rest = args;
  let chown: string | null = null;
  for (let m = /^--([A-Za-z-]+)(?:=(\S*))?(?:\s+|$)/.exec(rest); m !== null; m = /^--([A-Za-z-]+)(?:=(\S*))?(?:\s+|$)/.exec(rest)) {
    rest = rest.slice(m[0].length);
    const flag = (m[1] ?? "").toLowerCase();
    const value = m[2];
    if (flag === "chown") {
      if (!value) fail(`${keyword} --chown needs a value, e.g. --chown=user or --chown=1000:1000`);
      chown = expandWord(value ?? "", env, true, line);
      if (!USER_RE.test(chown)) fail(`${keyword} --chown=${chown}: not a user name or uid (optionally :group)`);
    } else if (flag === "from") {
      fail(`${keyword} --from is not supported: ${MULTI_STAGE}`);
    } else if (flag === "chmod") {
      fail(`${keyword} --chmod is not supported: set modes with a RUN chmod step after the ${keyword}`);
    } else if (flag === "link") {
      fail(`${keyword} --link is not supported: remove it`);
    } else if (flag === "checksum") {
      fail(`ADD --checksum is not supported: ADD can't download here; fetch and verify the file in a RUN step, or put it in the build context`);
    } else {
      fail(`${keyword} --${flag} is not supported`);
    }
  }
  if (hasHeredoc(rest)) fail(`heredocs (<<EOF) are not supported in ${keyword}: put the content in a file in the build context`);
  const exec = execForm(rest, keyword, line, true);
  const words = exec === null ? splitWords(rest).map((w) => expandWord(w, env, true, line)) : exec.map((w) => expandWord(w, env, false, line));
  if (words.length < 2) fail(`${keyword} needs at least one source and a destination, e.g. ${keyword} app.py /app/`);
  const dest = words.pop() as string;
  if (keyword === "ADD") {
    const url = words.find((s) => /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(s) || s.startsWith("git@"));
    if (url !== undefined) {
      fail(`ADD ${url}: the build does not download with ADD; fetch it in a RUN step (e.g. RUN curl -fsSLo /path ${url}) or put it in the build context`);
    }
  }
  checkCopy(keyword, words, dest, line);
  return { kind: "copy", sources: words, dest, chown, line, text };
}

function checkCopy(keyword: string, sources: string[], dest: string, line: number | null): void {
  const fail = (message: string): never => {
    throw new TemplateSpecError(message, line);
  };
  if (sources.length === 0 || sources.some((s) => s === "")) fail(`${keyword}: a source is empty`);
  if (dest === "") fail(`${keyword}: the destination is empty`);
  for (const source of sources) {
    if (WILDCARD_RE.test(source)) fail(`${keyword} ${source}: wildcards are not supported; name the files or their directory`);
    const normal = posix.normalize(source);
    if (normal === ".." || normal.startsWith("../")) fail(`${keyword} ${source}: the source is outside the build context`);
  }
  if (sources.length > 1 && !dest.endsWith("/")) {
    fail(`${keyword} with several sources needs a directory destination ending in "/" (e.g. ${dest}/)`);
  }
}

/** ENV NAME=value ... (values see the variables as they were before this ENV, as in Docker) or legacy ENV NAME value. */
function parseEnvInstruction(args: string, env: Record<string, string>, line: number): Record<string, string> {
  const words = splitWords(args);
  const vars: Record<string, string> = {};
  const checkName = (name: string): void => {
    if (!ENV_NAME_RE.test(name)) {
      throw new TemplateSpecError(`ENV: "${name}" is not a valid variable name: use letters, digits and '_', not starting with a digit`, line);
    }
  };
  if (!(words[0] ?? "").includes("=")) {
    const m = /^(\S+)\s+([\s\S]+)$/.exec(args);
    if (m === null) throw new TemplateSpecError(`ENV ${args} has no value: write ENV ${args}=value`, line);
    const name = m[1] as string;
    checkName(name);
    vars[name] = expandWord(m[2] as string, env, true, line);
    return vars;
  }
  for (const word of words) {
    const eq = word.indexOf("=");
    if (eq < 0) throw new TemplateSpecError(`ENV: "${word}" is not NAME=value; quote values that contain spaces, e.g. NAME="a b"`, line);
    const name = word.slice(0, eq);
    checkName(name);
    vars[name] = expandWord(word.slice(eq + 1), env, true, line);
  }
  return vars;
}

/** Splits on whitespace outside quotes, keeping quotes and escapes for expandWord. */
function splitWords(s: string): string[] {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (quote === null && /\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
      continue;
    }
    inWord = true;
    cur += c;
    if (c === "\\" && quote !== "'" && i + 1 < s.length) cur += s[++i];
    else if (quote === null && (c === '"' || c === "'")) quote = c;
    else if (c === quote) quote = null;
  }
  if (inWord) words.push(cur);
  return words;
}

/**
 * Docker's word processing: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` (and without the colon),
 * `${VAR:?message}`; `\$` escapes. With `shell`, quotes are removed ('...' literal, "..." expanding)
 * and a backslash escapes any character; without (JSON exec-form items), only `\$` is special.
 */
export function expandWord(word: string, vars: Record<string, string>, shell: boolean, line: number | null = null): string {
  let pos = 0;
  const fail = (message: string): never => {
    throw new TemplateSpecError(message, line);
  };
  const nameRe = /[A-Za-z_][A-Za-z0-9_]*/y;
  const readName = (): string => {
    nameRe.lastIndex = pos;
    const m = nameRe.exec(word);
    if (m === null) return "";
    pos += m[0].length;
    return m[0];
  };
  const lookup = (name: string): string | undefined => (Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : undefined);

  let depth = 0;
  const dollar = (): string => {
    pos++; // the $
    if (word[pos] !== "{") {
      const name = readName();
      return name === "" ? "$" : (lookup(name) ?? "");
    }
    const start = pos - 1;
    pos++;
    const name = readName();
    if (name === "") fail(`bad substitution in "${word}": a variable name must follow \${`);
    if (word[pos] === "}") {
      pos++;
      return lookup(name) ?? "";
    }
    let op = "";
    if (word[pos] === ":") {
      op = ":";
      pos++;
    }
    const modifier = word[pos];
    if (modifier !== "-" && modifier !== "+" && modifier !== "?") {
      fail(`unsupported substitution "${word.slice(start, pos + 1)}…": use $NAME, \${NAME}, \${NAME:-default} or \${NAME:+alternative}`);
    }
    pos++;
    if (++depth > 16) fail(`substitutions nested too deeply in "${word.slice(0, 60)}…"`);
    const alternative = until("}");
    depth--;
    const value = lookup(name);
    const isSet = op === ":" ? value !== undefined && value !== "" : value !== undefined;
    if (modifier === "-") return isSet ? (value as string) : alternative;
    if (modifier === "+") return isSet ? alternative : "";
    if (!isSet) fail(`${name} is not set${alternative === "" ? "" : `: ${alternative}`}`);
    return value as string;
  };

  const doubleQuoted = (): string => {
    let out = "";
    pos++; // the opening "
    while (pos < word.length) {
      const c = word[pos] as string;
      if (c === '"') {
        pos++;
        return out;
      }
      const next = word[pos + 1];
      if (c === "\\" && next !== undefined && '"$\\'.includes(next)) {
        out += next;
        pos += 2;
      } else if (c === "$") {
        out += dollar();
      } else {
        out += c;
        pos++;
      }
    }
    return fail(`unterminated double quote in ${word}`);
  };

  function until(stop: "}" | null): string {
    let out = "";
    while (pos < word.length) {
      const c = word[pos] as string;
      if (c === stop) {
        pos++;
        return out;
      }
      const next = word[pos + 1];
      if (c === "\\" && next !== undefined && (shell || next === "$")) {
        out += next;
        pos += 2;
      } else if (shell && c === "'") {
        const end = word.indexOf("'", pos + 1);
        if (end < 0) fail(`unterminated single quote in ${word}`);
        out += word.slice(pos + 1, end);
        pos = end + 1;
      } else if (shell && c === '"') {
        out += doubleQuoted();
      } else if (c === "$") {
        out += dollar();
      } else {
        out += c;
        pos++;
      }
    }
    if (stop !== null) fail(`missing "}" in ${word}`);
    return out;
  }

  return until(null);
}

interface Health {
  ready: string | null;
  readyTimeoutMs: number | null;
}

/** HEALTHCHECK [--interval=D --timeout=D --start-period=D --start-interval=D --retries=N] CMD ... | NONE */
function parseHealthcheck(args: string, line: number): Health {
  if (/^none$/i.test(args)) return { ready: null, readyTimeoutMs: null };
  const fail = (message: string): never => {
    throw new TemplateSpecError(message, line);
  };
  let rest = args;
  const durations: Record<string, number> = {};
  let retries: number | null = null;
  for (let m = /^--([A-Za-z-]+)(?:=(\S*))?\s+/.exec(rest); m !== null; m = /^--([A-Za-z-]+)(?:=(\S*))?\s+/.exec(rest)) {
    rest = rest.slice(m[0].length);
    const flag = (m[1] ?? "").toLowerCase();
    const value = m[2] ?? "";
    if (flag === "retries") {
      if (!/^\d{1,6}$/.test(value)) fail(`HEALTHCHECK --retries=${value}: give a whole number`);
      retries = Number(value);
    } else if (["interval", "timeout", "start-period", "start-interval"].includes(flag)) {
      const ms = parseDuration(value);
      if (ms === null) fail(`HEALTHCHECK --${flag}=${value}: give a duration such as 30s, 1m30s or 500ms`);
      durations[flag] = ms as number;
    } else {
      fail(`HEALTHCHECK --${flag} is not a HEALTHCHECK option`);
    }
  }
  const m = /^cmd(?:\s+([\s\S]*))?$/i.exec(rest);
  if (m === null) fail("HEALTHCHECK needs CMD <command> or NONE, e.g. HEALTHCHECK CMD curl -fs http://localhost:8000/");
  const command = (m?.[1] ?? "").trim();
  if (command === "") fail("HEALTHCHECK CMD needs a command");
  const exec = execForm(command, "HEALTHCHECK CMD", line, true);
  if (exec !== null && exec.length === 0) fail("HEALTHCHECK CMD [] has no command");
  const ready = exec === null ? command : exec.map(shellQuote).join(" ");
  // Ready within the time Docker would take to call the container unhealthy: start period + retries × interval.
  let readyTimeoutMs: number | null = null;
  if (durations["start-period"] !== undefined || durations["interval"] !== undefined || retries !== null) {
    const total = (durations["start-period"] ?? 0) + (retries || 3) * (durations["interval"] || 30_000);
    readyTimeoutMs = Math.min(READY_TIMEOUT_MAX_MS, Math.max(READY_TIMEOUT_MIN_MS, Math.round(total)));
  }
  return { ready, readyTimeoutMs };
}

/** A Go duration (what Docker's flags take): 1h2m3.5s, 500ms; null when malformed. */
function parseDuration(value: string): number | null {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) return value === "0" ? 0 : null;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * (unit[m[2] as string] ?? 0);
  return total;
}

// ---------------------------------------------------------------------------------------------------------------

function checkSize(text: string): string {
  if (text.length > MAX_SPEC_BYTES || Buffer.byteLength(text, "utf8") > MAX_SPEC_BYTES) {
    throw new TemplateSpecError(`the file is larger than ${MAX_SPEC_BYTES / 1024 / 1024} MiB`, null);
  }
  const nul = text.indexOf("\0");
  if (nul >= 0) throw new TemplateSpecError("the file contains a NUL byte: is it a text file?", lineOfOffset(text, nul));
  return text.startsWith("\uFEFF") ? text.slice(1) : text;
}

/** The map key written at `offset`, for messages. */
function keyAt(text: string, offset: number): string {
  const token = /"(?:[^"\\]|\\.)*"|'[^']*'|[^:\s]+/y;
  token.lastIndex = offset;
  const key = token.exec(text)?.[0] ?? "";
  return /^["']/.test(key) ? `"${key.slice(1, -1)}"` : `"${key}"`;
}

function lineOfOffset(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text[i] === "\n") line++;
  return line;
}

function oneLine(text: string): string {
  return truncate(
    text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "")
      .join(" "),
  );
}

function truncate(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;
}
