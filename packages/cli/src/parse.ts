import { parseArgs } from "node:util";
import type { CommandLine, GlobalFlags } from "./command.js";
import { groups, specs, type CommandSpec, type Options, type Values } from "./specs.js";
import { UsageError } from "./usage-error.js";

export const globalOptions = {
  "api-url": { type: "string" },
  "api-key": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} satisfies Options;

const valueTakingGlobals = new Set(["--api-url", "--api-key"]);

/**
 * Turns argv (without node and the script) into a command description. Pure: reads no environment
 * and touches no files, so every command line can be tested. Throws UsageError.
 */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const { path, rest } = splitPath(argv);
  const beforeTerminator = rest.slice(0, rest.includes("--") ? rest.indexOf("--") : rest.length);
  const wantsHelp = beforeTerminator.some((a) => a === "--help" || a === "-h");

  if (path.length === 0 || path[0] === "help") {
    const { global, words } = parseLoosely(rest);
    if (path.length === 0 && !wantsHelp && beforeTerminator.some((a) => a === "--version" || a === "-v")) return { global, command: { kind: "version" } };
    if (path.length === 0 && !wantsHelp) throw new UsageError("missing command");
    return { global, command: { kind: "help", topic: [...path.slice(1), ...words] } };
  }

  const spec = findSpec(path);
  if (!spec) {
    const group = innermostGroup(path);
    if (group && (path.length === group.length || wantsHelp)) {
      if (wantsHelp) return { global: parseLoosely(rest).global, command: { kind: "help", topic: group } };
      throw new UsageError(`missing subcommand for '${group.join(" ")}'`, group);
    }
    throw new UsageError(`unknown command '${path.join(" ")}'`, group ?? []);
  }
  const topic = spec.path.split(" ");
  if (wantsHelp) return { global: parseLoosely(rest).global, command: { kind: "help", topic } };

  const { values, args, after } = parseWith(spec.options, rest, topic);
  if (args.length < spec.args.min) throw new UsageError(`missing arguments: ${spec.usage}`, topic);
  if (args.length > spec.args.max && after === undefined) throw new UsageError(`too many arguments: ${spec.usage}`, topic);
  if (after !== undefined && spec.path !== "exec") throw new UsageError(`unexpected arguments after --: ${spec.usage}`, topic);
  try {
    return { global: globalFrom(values), command: spec.build({ values, args, rest: after }) };
  } catch (err) {
    // Value errors come from shared parsers that do not know which command they serve.
    if (err instanceof UsageError && err.topic.length === 0) throw new UsageError(err.message, topic);
    throw err;
  }
}

/** The longest leading run of words that names a group ("e2b key" rather than "e2b"), if any. */
function innermostGroup(path: readonly string[]): string[] | undefined {
  for (let n = path.length; n > 0; n--) if (Object.hasOwn(groups, path.slice(0, n).join(" "))) return path.slice(0, n);
  return undefined;
}

/** Leading words name the command (one word, or more after group words); global flags may come before them. */
function splitPath(argv: readonly string[]): { path: string[]; rest: string[] } {
  const path: string[] = [];
  const rest: string[] = [];
  let i = 0;
  const wantsWord = () => path.length === 0 || Object.hasOwn(groups, path.join(" "));
  while (i < argv.length && wantsWord()) {
    const token = argv[i]!;
    if (token === "--") break;
    if (token.startsWith("-") && token !== "-") {
      rest.push(token);
      if (valueTakingGlobals.has(token) && i + 1 < argv.length) rest.push(argv[++i]!);
    } else {
      path.push(token);
    }
    i++;
  }
  return { path, rest: [...rest, ...argv.slice(i)] };
}

function parseWith(options: Options, args: string[], topic: string[]): { values: Values; args: string[]; after: string[] | undefined } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...globalOptions, ...options }, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    // parseArgs' messages are good; drop its advice about `--` for positionals, which rarely applies here.
    throw new UsageError((err as Error).message.replace(/;? ?To specify a positional argument.*$/s, ""), topic);
  }
  const terminator = parsed.tokens.find((t) => t.kind === "option-terminator")?.index;
  const before: string[] = [];
  const after: string[] = [];
  for (const token of parsed.tokens) {
    if (token.kind === "positional") (terminator !== undefined && token.index > terminator ? after : before).push(token.value);
  }
  return { values: parsed.values as Values, args: before, after: terminator === undefined ? undefined : after };
}

/** Help and version accept anything after the command words; only global flags and plain words matter. */
function parseLoosely(args: string[]): { global: GlobalFlags; words: string[] } {
  const parsed = parseArgs({ args, options: globalOptions, allowPositionals: true, strict: false });
  return { global: globalFrom(parsed.values as Values), words: parsed.positionals };
}

function globalFrom(values: Values): GlobalFlags {
  return {
    ...(typeof values["api-url"] === "string" ? { apiUrl: values["api-url"] } : {}),
    ...(typeof values["api-key"] === "string" ? { apiKey: values["api-key"] } : {}),
    json: values.json === true,
  };
}

/** The command a path names, by its own path or an alias. */
export function findSpec(topic: readonly string[]): CommandSpec | undefined {
  const path = topic.join(" ");
  return specs.find((s) => s.path === path || s.aliases?.includes(path));
}
