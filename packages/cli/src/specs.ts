import { BENCH_SECTION_PARTS, BENCH_SECTIONS, isBenchSectionPart, type BenchSection } from "./bench-sections.js";
import { OnTimeoutSchema, SandboxStateSchema, signalNames, type CreateSandboxRequest, type StandbyPolicy } from "@stasis/protocol";
import type { ParseArgsConfig } from "node:util";
import type { Command } from "./command.js";
import { codeSpecs } from "./code-specs.js";
import { secretSpecs } from "./secret-specs.js";
import { e2bSpecs } from "./e2b-specs.js";
import { templateSpecs } from "./template-specs.js";
import { hostingSpecs } from "./hosting-specs.js";
import { mcpSpecs } from "./mcp-specs.js";
import { networkFlags, networkOptions, networkPolicy, networkSpecs, secretNames } from "./network-specs.js";
import { UsageError } from "./usage-error.js";
import { bool, commandFrom, dataDirFlag, dataDirOption, duration, durationOrOff, keyValues, list, number, oneOf, str } from "./values.js";

export type Options = NonNullable<ParseArgsConfig["options"]>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface SpecInput {
  values: Values;
  /** Positionals before `--`. */
  args: string[];
  /** Positionals after `--`, or undefined when there was no `--`. */
  rest: string[] | undefined;
}

export interface CommandSpec {
  /** Words that select the command, e.g. "sandbox create". */
  path: string;
  /** Other paths that select it, e.g. "template delete" for "template rm". */
  aliases?: string[];
  usage: string;
  summary: string;
  flags?: [string, string][];
  options: Options;
  args: { min: number; max: number };
  build(input: SpecInput): Command;
}

const runtimes = ["gvisor", "crun"] as const;
const states = SandboxStateSchema.options;
const onTimeouts = OnTimeoutSchema.options;
const standbyOptions = { "idle-timeout": { type: "string" }, "hibernate-after": { type: "string" }, "on-timeout": { type: "string" } } satisfies Options;
const standbyFlags: [string, string][] = [
  ["--idle-timeout D", "pause after this long without activity (0 or off: never; new sandboxes: 15s)"],
  ["--hibernate-after D", "hibernate after this long paused (0 or off: never; new sandboxes: 10m)"],
  ["--on-timeout A", "when the lifetime passes: standby (pause) or kill (new sandboxes: standby)"],
];

/** Only the standby flags given, so the others keep the sandbox's current values (or the defaults). */
function standbyPolicy(v: Values): StandbyPolicy {
  const idleTimeoutMs = durationOrOff(str(v, "idle-timeout"), "--idle-timeout");
  const hibernateAfterMs = durationOrOff(str(v, "hibernate-after"), "--hibernate-after");
  const onTimeout = oneOf(str(v, "on-timeout"), onTimeouts, "--on-timeout");
  return {
    ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
    ...(hibernateAfterMs !== undefined ? { hibernateAfterMs } : {}),
    ...(onTimeout ? { onTimeout } : {}),
  };
}

function sandboxId(args: string[]): string {
  return args[0]!;
}

export const specs: CommandSpec[] = [
  {
    path: "serve",
    usage: "stasis serve [--host H] [--port P] [--data-dir D] [--runtime gvisor|crun]",
    summary: "Run the daemon in the foreground (as root)",
    flags: [
      ["--host H", "address to listen on (default 127.0.0.1)"],
      ["--port P", "port to listen on (default 7070; 0 picks a free one)"],
      dataDirFlag,
      ["--runtime R", "default runtime for new sandboxes: gvisor or crun"],
    ],
    options: { host: { type: "string" }, port: { type: "string" }, runtime: { type: "string" }, ...dataDirOption },
    args: { min: 0, max: 0 },
    build: ({ values }) => ({
      kind: "serve",
      host: str(values, "host"),
      port: number(str(values, "port"), "--port", { integer: true }),
      dataDir: str(values, "data-dir"),
      runtime: oneOf(str(values, "runtime"), runtimes, "--runtime"),
    }),
  },
  {
    path: "doctor",
    usage: "stasis doctor [--data-dir D] [--json]",
    summary: "Check this host for everything the daemon needs",
    flags: [dataDirFlag],
    options: { ...dataDirOption },
    args: { min: 0, max: 0 },
    build: ({ values }) => ({ kind: "doctor", dataDir: str(values, "data-dir") }),
  },
  ...templateSpecs,
  {
    path: "bench",
    usage: "stasis bench [--quick] [--sections S[:PART],...] [--out DIR] [--compare FILE [--to FILE]]",
    summary: "Benchmark Stasis beside the raw runtimes and write docs/benchmarks.md with charts (as root)",
    flags: [
      ["--quick", "fewer samples, 50 MiB working set, 1/10/50 clients: under 4 minutes (full: under 20)"],
      ["--sections S[:PART],...", `only these parts: ${BENCH_SECTIONS.join(", ")}; S:PART runs one part of S (${Object.entries(BENCH_SECTION_PARTS).map(([s, p]) => `${s}: ${p.join("/")}`).join("; ")})`],
      ["--out DIR", "write DIR/benchmarks.md and DIR/bench/ (charts, results.json); default: the repository's docs/"],
      ["--compare FILE", "after the run, print FILE's figures (an earlier results.json) against this run's"],
      ["--to FILE", "with --compare: compare FILE against it instead of running (no root needed)"],
      ["", "Starts its own daemon and cleans up after itself, also on Ctrl-C. --json prints the result as JSON."],
    ],
    options: { quick: { type: "boolean" }, sections: { type: "string" }, out: { type: "string" }, compare: { type: "string" }, to: { type: "string" } },
    args: { min: 0, max: 0 },
    build: ({ values }) => {
      const items = str(values, "sections")
        ?.split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      const parts = items?.filter((item) => item.includes(":"));
      const sections = items
        ?.map((item): BenchSection => {
          const [name = "", part] = item.split(":");
          const section = oneOf(name, BENCH_SECTIONS, "--sections")!;
          if (part !== undefined && !isBenchSectionPart(section, part)) throw new UsageError(`--sections ${item}: ${section} has ${BENCH_SECTION_PARTS[section] ? `the parts ${BENCH_SECTION_PARTS[section].join(", ")}` : "no parts"}`);
          return section;
        })
        .filter((s, i, all) => all.indexOf(s) === i);
      if (sections !== undefined && sections.length === 0) throw new UsageError("--sections needs at least one section");
      const compareTo = str(values, "to");
      const compare = str(values, "compare");
      if (compareTo !== undefined && compare === undefined) throw new UsageError("--to needs --compare: stasis bench --compare OLD.json --to NEW.json");
      return {
        kind: "bench",
        quick: bool(values, "quick"),
        ...(sections ? { sections } : {}),
        ...(parts?.length ? { parts } : {}),
        ...(str(values, "out") !== undefined ? { out: str(values, "out") } : {}),
        ...(compare !== undefined ? { compare } : {}),
        ...(compareTo !== undefined ? { compareTo } : {}),
      };
    },
  },
  {
    path: "sandbox create",
    usage:
      "stasis sandbox create [--template T] [--runtime R] [--cpu N] [--memory MiB] [--disk MiB] [--timeout D] [--idle-timeout D] [--hibernate-after D] [--on-timeout standby|kill] [--env K=V]... [--meta K=V]... [--internet on|off] [--allow-out T]... [--deny-out T]... [--secret NAME]...",
    summary: "Create a sandbox and print its id",
    flags: [
      ["--template T", "template to start from: NAME (its latest version) or NAME:VERSION (default base)"],
      ["--runtime R", "gvisor or crun (default: the daemon's)"],
      ["--cpu N", "CPU cores, fractions allowed (default: the template's, else 1)"],
      ["--memory MiB", "memory limit (default: the template's, else 512)"],
      ["--disk MiB", "writable disk size (default: the template's, else 4096)"],
      ["--timeout D", "lifetime in running time: ms, or with a unit (30s, 10m, 2h)"],
      ...standbyFlags,
      ["-e, --env K=V", "environment variable for every command (repeatable)"],
      ["--meta K=V", "metadata label (repeatable)"],
      ...networkFlags,
      ["--secret NAME", "a secret (stasis secret set) the sandbox may use: its variable holds a placeholder (repeatable)"],
    ],
    options: {
      template: { type: "string" },
      runtime: { type: "string" },
      cpu: { type: "string" },
      memory: { type: "string" },
      disk: { type: "string" },
      timeout: { type: "string" },
      ...standbyOptions,
      env: { type: "string", short: "e", multiple: true },
      meta: { type: "string", multiple: true },
      ...networkOptions,
      secret: { type: "string", multiple: true },
    },
    args: { min: 0, max: 0 },
    build: ({ values }) => {
      const request: CreateSandboxRequest = {};
      const set = <K extends keyof CreateSandboxRequest>(key: K, value: CreateSandboxRequest[K] | undefined) => {
        if (value !== undefined) request[key] = value;
      };
      set("template", str(values, "template"));
      set("runtime", oneOf(str(values, "runtime"), runtimes, "--runtime"));
      set("cpu", number(str(values, "cpu"), "--cpu"));
      set("memoryMiB", number(str(values, "memory"), "--memory", { integer: true }));
      set("diskMiB", number(str(values, "disk"), "--disk", { integer: true }));
      set("timeoutMs", duration(str(values, "timeout"), "--timeout"));
      Object.assign(request, standbyPolicy(values));
      if (list(values, "env").length) request.env = keyValues(list(values, "env"), "--env");
      if (list(values, "meta").length) request.metadata = keyValues(list(values, "meta"), "--meta");
      const network = networkPolicy(values);
      if (Object.keys(network).length > 0) request.network = network;
      const secrets = secretNames(values);
      if (secrets.length > 0) request.secrets = secrets;
      return { kind: "sandbox.create", request };
    },
  },
  {
    path: "sandbox list",
    usage: "stasis sandbox list [--state S] [--meta K=V]... [--json]",
    summary: "List sandboxes, newest first",
    flags: [
      ["--state S", `only sandboxes in this state (${states.join(", ")})`],
      ["--meta K=V", "only sandboxes with this metadata label (repeatable)"],
    ],
    options: { state: { type: "string" }, meta: { type: "string", multiple: true } },
    args: { min: 0, max: 0 },
    build: ({ values }) => ({ kind: "sandbox.list", state: oneOf(str(values, "state"), states, "--state"), metadata: keyValues(list(values, "meta"), "--meta") }),
  },
  {
    path: "sandbox get",
    usage: "stasis sandbox get ID [--json]",
    summary: "Show one sandbox",
    options: {},
    args: { min: 1, max: 1 },
    build: ({ args }) => ({ kind: "sandbox.get", id: sandboxId(args) }),
  },
  {
    path: "sandbox kill",
    usage: "stasis sandbox kill ID...",
    summary: "Kill sandboxes and delete them with their files",
    options: {},
    args: { min: 1, max: Infinity },
    build: ({ args }) => ({ kind: "sandbox.kill", ids: args }),
  },
  {
    path: "sandbox pause",
    usage: "stasis sandbox pause ID...",
    summary: "Freeze sandboxes in RAM (no CPU); any later request wakes them",
    options: {},
    args: { min: 1, max: Infinity },
    build: ({ args }) => ({ kind: "sandbox.pause", ids: args }),
  },
  {
    path: "sandbox hibernate",
    usage: "stasis sandbox hibernate ID...",
    summary: "Checkpoint sandboxes to disk (no CPU, no memory); any later request restores them",
    options: {},
    args: { min: 1, max: Infinity },
    build: ({ args }) => ({ kind: "sandbox.hibernate", ids: args }),
  },
  {
    path: "sandbox resume",
    usage: "stasis sandbox resume ID...",
    summary: "Wake paused or hibernated sandboxes ahead of their next request",
    options: {},
    args: { min: 1, max: Infinity },
    build: ({ args }) => ({ kind: "sandbox.resume", ids: args }),
  },
  {
    path: "sandbox fork",
    usage: "stasis sandbox fork ID [--count N] [--json]",
    summary: "Copy a sandbox's memory, processes and files into new sandboxes and print their ids",
    flags: [["--count N", "how many copies (default 1)"]],
    options: { count: { type: "string" } },
    args: { min: 1, max: 1 },
    build: ({ values, args }) => ({ kind: "sandbox.fork", id: sandboxId(args), count: number(str(values, "count"), "--count", { integer: true, min: 1 }) ?? 1 }),
  },
  {
    path: "sandbox standby",
    usage: "stasis sandbox standby ID [--idle-timeout D] [--hibernate-after D] [--on-timeout standby|kill]",
    summary: "Change when a sandbox pauses and hibernates on its own, and what its lifetime's end does",
    flags: standbyFlags,
    options: { ...standbyOptions },
    args: { min: 1, max: 1 },
    build: ({ values, args }) => {
      const policy = standbyPolicy(values);
      if (Object.keys(policy).length === 0) throw new UsageError("nothing to change: give --idle-timeout, --hibernate-after or --on-timeout");
      return { kind: "sandbox.standby", id: sandboxId(args), policy };
    },
  },
  {
    path: "sandbox timeout",
    usage: "stasis sandbox timeout ID DURATION",
    summary: "Make a sandbox expire DURATION from now (ms, or 30s, 10m, 2h)",
    options: {},
    args: { min: 2, max: 2 },
    build: ({ args }) => ({ kind: "sandbox.timeout", id: sandboxId(args), timeoutMs: duration(args[1], "DURATION")! }),
  },
  {
    path: "exec",
    usage: "stasis exec ID [--cwd D] [--user U] [--env K=V]... [--timeout D] [--stdin] -- CMD [ARGS...]",
    summary: "Run a command in a sandbox, streaming its output; exits with its exit code",
    flags: [
      ["--cwd D", "working directory, absolute (default: the template's, else the user's home)"],
      ["--user U", "user to run as (default: the template's, else root)"],
      ["-e, --env K=V", "environment variable (repeatable)"],
      ["--timeout D", "kill the command after this long (0 = never; default 60s, none with --stdin)"],
      ["-i, --stdin", "pipe this terminal's stdin into the command"],
      ["", "One CMD with spaces or shell syntax runs via /bin/sh -c; several run as argv."],
    ],
    options: {
      cwd: { type: "string" },
      user: { type: "string" },
      env: { type: "string", short: "e", multiple: true },
      timeout: { type: "string" },
      stdin: { type: "boolean", short: "i" },
    },
    args: { min: 1, max: Infinity },
    build: ({ values, args, rest }) => {
      // Without `--`, words after the id are the command (those starting with '-' need the `--`).
      const words = rest ?? args.slice(1);
      if (rest !== undefined && args.length > 1) throw new UsageError(`unexpected '${args[1]}' before --`, ["exec"]);
      if (words.length === 0) throw new UsageError("missing command: stasis exec ID -- CMD [ARGS...]", ["exec"]);
      return {
        kind: "exec",
        id: sandboxId(args),
        cmd: commandFrom(words),
        cwd: str(values, "cwd"),
        user: str(values, "user"),
        env: keyValues(list(values, "env"), "--env"),
        timeoutMs: duration(str(values, "timeout"), "--timeout"),
        stdin: bool(values, "stdin"),
      };
    },
  },
  {
    path: "shell",
    usage: "stasis shell ID [--pid PID] [--cwd D] [--user U]",
    summary: "An interactive terminal in a sandbox (a login shell); exits with the shell's exit code",
    flags: [
      ["--pid PID", "re-attach to a terminal still running (its recent output is shown again)"],
      ["--cwd D", "working directory, absolute (default: the template's, else the user's home)"],
      ["--user U", "user to run as (default: the template's, else root)"],
      ["", "Ctrl-D at the prompt ends the shell. The terminal outlives this client: a lost connection is re-attached."],
    ],
    options: { pid: { type: "string" }, cwd: { type: "string" }, user: { type: "string" } },
    args: { min: 1, max: 1 },
    build: ({ values, args }) => ({ kind: "shell", id: sandboxId(args), pid: number(str(values, "pid"), "--pid", { integer: true, min: 1 }), cwd: str(values, "cwd"), user: str(values, "user") }),
  },
  {
    path: "files put",
    usage: "stasis files put ID LOCAL REMOTE [--mode 644]",
    summary: "Upload a local file (- for stdin) to an absolute path in the sandbox",
    flags: [["--mode M", "octal permission bits of the new file"]],
    options: { mode: { type: "string" } },
    args: { min: 3, max: 3 },
    build: ({ values, args }) => ({ kind: "files.put", id: sandboxId(args), local: args[1]!, remote: args[2]!, mode: str(values, "mode") }),
  },
  {
    path: "files get",
    usage: "stasis files get ID REMOTE [LOCAL|-]",
    summary: "Download a file from the sandbox (default: to stdout)",
    options: {},
    args: { min: 2, max: 3 },
    build: ({ args }) => ({ kind: "files.get", id: sandboxId(args), remote: args[1]!, local: args[2] ?? "-" }),
  },
  {
    path: "files ls",
    usage: "stasis files ls ID PATH [--depth N] [--json]",
    summary: "List a directory in the sandbox",
    flags: [["--depth N", "levels to recurse (default 1)"]],
    options: { depth: { type: "string" } },
    args: { min: 2, max: 2 },
    build: ({ values, args }) => ({ kind: "files.ls", id: sandboxId(args), path: args[1]!, depth: number(str(values, "depth"), "--depth", { integer: true, min: 1 }) ?? 1 }),
  },
  {
    path: "files rm",
    usage: "stasis files rm ID PATH [-r]",
    summary: "Remove a file, or a directory with -r",
    flags: [["-r, --recursive", "remove a directory and its contents"]],
    options: { recursive: { type: "boolean", short: "r" } },
    args: { min: 2, max: 2 },
    build: ({ values, args }) => ({ kind: "files.rm", id: sandboxId(args), path: args[1]!, recursive: bool(values, "recursive") }),
  },
  {
    path: "files mkdir",
    usage: "stasis files mkdir ID PATH",
    summary: "Create a directory and its parents",
    options: {},
    args: { min: 2, max: 2 },
    build: ({ args }) => ({ kind: "files.mkdir", id: sandboxId(args), path: args[1]! }),
  },
  {
    path: "ps",
    usage: "stasis ps ID [--json]",
    summary: "List a sandbox's processes started through the API",
    options: {},
    args: { min: 1, max: 1 },
    build: ({ args }) => ({ kind: "ps", id: sandboxId(args) }),
  },
  {
    path: "kill-process",
    usage: "stasis kill-process ID PID [--signal S]",
    summary: "Signal a process group in a sandbox (default SIGKILL)",
    flags: [["--signal S", `one of ${signalNames.join(", ")}`]],
    options: { signal: { type: "string" } },
    args: { min: 2, max: 2 },
    build: ({ values, args }) => ({
      kind: "kill-process",
      id: sandboxId(args),
      pid: number(args[1], "PID", { integer: true, min: 1 })!,
      signal: oneOf(str(values, "signal")?.toUpperCase().replace(/^(?!SIG)/, "SIG"), signalNames, "--signal") ?? "SIGKILL",
    }),
  },
  ...e2bSpecs,
  ...secretSpecs,
  ...networkSpecs,
  ...hostingSpecs,
  ...codeSpecs,
  ...mcpSpecs,
];

/** Words that only group subcommands; a group may sit inside another ("e2b key" in "e2b"). */
export const groups: Record<string, string> = {
  template: "Build, import, list and delete the daemon's sandbox templates",
  sandbox: "Create, list, inspect and kill sandboxes",
  files: "Move files in and out of a sandbox",
  e2b: "Manage the daemon's E2B-compatible API, used by the unmodified e2b SDK",
  "e2b key": "Issue, list and revoke API keys for the E2B-compatible API",
  secret: "Set, list and delete secrets the egress proxy injects into requests to their hosts",
  domain: "Serve sandboxes' ports at host names of your own (HTTPS with the daemon's certificates)",
};
