import { findSpec } from "./parse.js";
import { groups, specs, type CommandSpec } from "./specs.js";
import { UsageError } from "./usage-error.js";

const GLOBAL_FLAGS: [string, string][] = [
  ["--api-url URL", "daemon URL (default $STASIS_API_URL or http://127.0.0.1:7070)"],
  ["--api-key KEY", "API key (default $STASIS_API_KEY or the daemon's key file)"],
  ["--json", "machine-readable output on stdout"],
  ["-h, --help", "show help"],
];

function flagLines(flags: [string, string][]): string[] {
  const width = Math.max(...flags.map(([f]) => f.length));
  return flags.map(([flag, text]) => (flag ? `  ${flag.padEnd(width)}  ${text}` : `  ${" ".repeat(width)}  ${text}`));
}

function summaryLines(list: { name: string; summary: string }[]): string[] {
  const width = Math.max(...list.map((c) => c.name.length));
  return list.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
}

/** The command's words after `prefix`, then its aliases' last words: "template rm, delete". */
function names(spec: CommandSpec, prefix = ""): string {
  return [spec.path.slice(prefix.length), ...(spec.aliases ?? []).map((a) => a.split(" ").pop()!)].join(", ");
}

function commandHelp(spec: CommandSpec): string {
  const lines = [`Usage: ${spec.usage}`, "", spec.summary + "."];
  if (spec.aliases?.length) lines.push("", `Also: ${spec.aliases.map((a) => `stasis ${a}`).join(", ")}`);
  if (spec.flags?.length) lines.push("", "Options:", ...flagLines(spec.flags));
  lines.push("", "Global options:", ...flagLines(GLOBAL_FLAGS));
  return lines.join("\n");
}

function groupHelp(group: string): string {
  const members = specs.filter((s) => s.path.startsWith(`${group} `));
  return [
    `Usage: stasis ${group} <command> [options]`,
    "",
    `${groups[group]}.`,
    "",
    "Commands:",
    ...summaryLines(members.map((s) => ({ name: names(s, `${group} `), summary: s.summary }))),
    "",
    `Run 'stasis ${group} <command> --help' for a command's options.`,
  ].join("\n");
}

function rootHelp(): string {
  return [
    "Usage: stasis <command> [options]",
    "",
    "Stasis: self-hosted code-execution sandboxes.",
    "",
    "Commands:",
    ...summaryLines(specs.map((s) => ({ name: names(s), summary: s.summary }))),
    "",
    "Global options:",
    ...flagLines(GLOBAL_FLAGS),
    "",
    "Run 'stasis <command> --help' for a command's options.",
  ].join("\n");
}

/** The help page for a topic: [] for the overview, ["sandbox"] or ["e2b", "key"] for a group, ["sandbox", "create"] for a command. */
export function helpText(topic: readonly string[]): string {
  if (topic.length === 0) return rootHelp();
  const spec = findSpec(topic);
  if (spec) return commandHelp(spec);
  if (Object.hasOwn(groups, topic.join(" "))) return groupHelp(topic.join(" "));
  throw new UsageError(`no help for '${topic.join(" ")}'`);
}
