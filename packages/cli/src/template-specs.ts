import { TemplateNameSchema, TemplateRefSchema } from "@stasis/protocol";
import type { TemplateResourceFlags } from "./command.js";
import type { CommandSpec, Options, Values } from "./specs.js";
import { UsageError } from "./usage-error.js";
import { bool, dataDirOption, number, str } from "./values.js";

const templateResourceOptions = { cpu: { type: "string" }, memory: { type: "string" }, disk: { type: "string" }, pool: { type: "string" } } satisfies Options;
const templateResourceFlags: [string, string][] = [
  ["--cpu N", "default CPU cores of its sandboxes"],
  ["--memory MiB", "default memory limit of its sandboxes"],
  ["--disk MiB", "default writable disk size of its sandboxes"],
  ["--pool N", "warm-pool size: sandboxes kept booted for instant creates"],
];

function templateResources(v: Values): TemplateResourceFlags {
  const out: TemplateResourceFlags = {};
  const cpu = number(str(v, "cpu"), "--cpu");
  const memoryMiB = number(str(v, "memory"), "--memory", { integer: true });
  const diskMiB = number(str(v, "disk"), "--disk", { integer: true });
  const pool = number(str(v, "pool"), "--pool", { integer: true });
  if (cpu !== undefined) out.cpu = cpu;
  if (memoryMiB !== undefined) out.memoryMiB = memoryMiB;
  if (diskMiB !== undefined) out.diskMiB = diskMiB;
  if (pool !== undefined) out.pool = pool;
  return out;
}

function templateName(value: string, what: string): string {
  if (!TemplateNameSchema.safeParse(value).success) throw new UsageError(`${what} must be lowercase letters, digits, '.', '_' and '-', starting with a letter or digit; got '${value}'`);
  return value;
}

function templateRef(value: string): string {
  if (!TemplateRefSchema.safeParse(value).success) throw new UsageError(`not a template reference: '${value}' (NAME or NAME:VERSION)`);
  return value;
}

/** The `stasis template` commands; kept apart from specs.ts, which lists the others. */
export const templateSpecs: CommandSpec[] = [
  {
    path: "template build",
    usage:
      "stasis template build [DIR] --name N [-f FILE] [--no-cache] [--snapshot|--no-snapshot] [--cpu N] [--memory MiB] [--disk MiB] [--pool N] [--json]\n" +
      "       stasis template build --builtin [NAME] [--force] [--data-dir D]",
    summary: "Build a template version on the daemon from a directory with a stasis.yaml or Dockerfile",
    flags: [
      ["--name N", "template name; each build adds a version (N:1, N:2, ...)"],
      ["-f, --file FILE", "the spec or Dockerfile, inside DIR (default: stasis.yaml, stasis.yml, stasis.json or Dockerfile)"],
      ["--no-cache", "rebuild every step instead of reusing cached layers"],
      ["--snapshot", "snapshot the running start command even if the spec says not to"],
      ["--no-snapshot", "skip the snapshot even if the spec asks for one"],
      ...templateResourceFlags,
      ["--builtin [NAME]", "instead: build a built-in template (default base) on this host, without a daemon (as root)"],
      ["--force", "with --builtin: rebuild even when an identical build exists"],
      ["--data-dir D", "with --builtin: daemon data directory (default $STASIS_DATA_DIR or /var/lib/stasis)"],
      ["", "DIR (default .) is sent as the build context, less what its .dockerignore or .stasisignore lists (4 GiB at most)."],
      ["", "--json prints the build's events as NDJSON."],
    ],
    options: {
      name: { type: "string" },
      file: { type: "string", short: "f" },
      "no-cache": { type: "boolean" },
      snapshot: { type: "boolean" },
      "no-snapshot": { type: "boolean" },
      ...templateResourceOptions,
      builtin: { type: "boolean" },
      force: { type: "boolean" },
      ...dataDirOption,
    },
    args: { min: 0, max: 1 },
    build: ({ values, args }) => {
      const daemonFlags = ["name", "file", "no-cache", "snapshot", "no-snapshot", ...Object.keys(templateResourceOptions)];
      if (bool(values, "builtin")) {
        const stray = daemonFlags.find((f) => values[f] !== undefined);
        if (stray) throw new UsageError(`--${stray} is for daemon builds, not --builtin`);
        return { kind: "template.build.builtin", name: args[0] ?? "base", force: bool(values, "force"), dataDir: str(values, "data-dir") };
      }
      const local = ["force", "data-dir"].find((f) => values[f] !== undefined);
      if (local) throw new UsageError(`--${local} goes with --builtin`);
      const name = str(values, "name");
      // `template build base` was the local build of the built-in template before builds went to the daemon.
      if (name === undefined) throw new UsageError("missing --name: stasis template build [DIR] --name N (or, for the built-in base: stasis template build --builtin base)");
      if (bool(values, "snapshot") && bool(values, "no-snapshot")) throw new UsageError("--snapshot and --no-snapshot contradict each other");
      const snapshot = bool(values, "snapshot") ? true : bool(values, "no-snapshot") ? false : undefined;
      const file = str(values, "file");
      return {
        kind: "template.build",
        context: args[0] ?? ".",
        name: templateName(name, "--name"),
        ...(file !== undefined ? { file } : {}),
        noCache: bool(values, "no-cache"),
        ...(snapshot !== undefined ? { snapshot } : {}),
        resources: templateResources(values),
      };
    },
  },
  {
    path: "template import",
    usage: "stasis template import NAME ARCHIVE [--image REF] [--cpu N] [--memory MiB] [--disk MiB] [--pool N] [--json]",
    summary: "Import an OCI image (docker save tarball, OCI layout tar or directory) as a template version",
    flags: [["--image REF", "which image in the archive (tag or name:tag; default: the only one)"], ...templateResourceFlags],
    options: { image: { type: "string" }, ...templateResourceOptions },
    args: { min: 2, max: 2 },
    build: ({ values, args }) => {
      const image = str(values, "image");
      return { kind: "template.import", name: templateName(args[0]!, "NAME"), archive: args[1]!, ...(image !== undefined ? { image } : {}), resources: templateResources(values) };
    },
  },
  {
    path: "template list",
    usage: "stasis template list [--json]",
    summary: "List the daemon's templates, every version",
    options: {},
    args: { min: 0, max: 0 },
    build: () => ({ kind: "template.list" }),
  },
  {
    path: "template get",
    usage: "stasis template get REF [--json]",
    summary: "Show a template version (REF: NAME for the latest, or NAME:VERSION)",
    options: {},
    args: { min: 1, max: 1 },
    build: ({ args }) => ({ kind: "template.get", ref: templateRef(args[0]!) }),
  },
  {
    path: "template set",
    usage: "stasis template set REF [--pool N] [--cpu N] [--memory MiB] [--disk MiB] [--json]",
    summary: "Change a template version's warm-pool size or the defaults of its sandboxes",
    flags: templateResourceFlags,
    options: { ...templateResourceOptions },
    args: { min: 1, max: 1 },
    build: ({ values, args }) => {
      const resources = templateResources(values);
      if (Object.keys(resources).length === 0) throw new UsageError("nothing to change: give --pool, --cpu, --memory or --disk");
      return { kind: "template.set", ref: templateRef(args[0]!), resources };
    },
  },
  {
    path: "template rm",
    aliases: ["template delete"],
    usage: "stasis template rm REF...",
    summary: "Delete template versions (NAME:VERSION) or whole templates (NAME)",
    options: {},
    args: { min: 1, max: Infinity },
    build: ({ args }) => ({ kind: "template.rm", refs: args.map(templateRef) }),
  },
];
