import { UsageError } from "./usage-error.js";

/** Parsed flags (node:util parseArgs values). */
type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** A string flag's value, or undefined. */
export const str = (v: FlagValues, name: string): string | undefined => (typeof v[name] === "string" ? (v[name] as string) : undefined);

/** A repeatable string flag's values (none: empty). */
/** A boolean flag: given or not. */
export const bool = (v: FlagValues, name: string): boolean => v[name] === true;

/** --data-dir of the commands that work on the daemon's folder directly (serve, doctor, template build --builtin). */
export const dataDirOption = { "data-dir": { type: "string" } } as const;
export const dataDirFlag: [string, string] = ["--data-dir D", "daemon data directory (default $STASIS_DATA_DIR or /var/lib/stasis)"];

export const list = (v: FlagValues, name: string): string[] => (Array.isArray(v[name]) ? (v[name] as unknown[]).filter((x): x is string => typeof x === "string") : []);

/** Parses `K=V` pairs (repeatable flags) into a record; the value may itself contain '='. */
export function keyValues(pairs: readonly string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`${flag} expects KEY=VALUE, got '${pair}'`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export function number(value: string | undefined, flag: string, options: { integer?: boolean; min?: number } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || (options.integer && !Number.isInteger(n)) || n < (options.min ?? 0)) {
    throw new UsageError(`${flag} expects ${options.integer ? "an integer" : "a number"} >= ${options.min ?? 0}, got '${value}'`);
  }
  return n;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds from "1500", "1500ms", "30s", "5m", "2h" or "1d". */
export function duration(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!match) throw new UsageError(`${flag} expects a duration such as 1500, 30s, 5m or 2h, got '${value}'`);
  return Math.round(Number(match[1]) * (UNITS[match[2] ?? "ms"] ?? 1));
}

/** A standby timer: a duration, or `0`/`off` to turn it off. */
export function durationOrOff(value: string | undefined, flag: string): number | undefined {
  return value?.trim() === "off" ? 0 : duration(value, flag);
}

export function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${allowed.join(", ")}, got '${value}'`);
  return value as T;
}

const SHELL_SYNTAX = /[\s|&;<>()$`\\"'*?[\]#~{}]/;

/**
 * One argument with spaces or shell syntax is a shell command line (`exec ID -- "ls | wc -l"`);
 * otherwise the arguments are an argv, passed on untouched (`exec ID -- ls -la`).
 */
export function commandFrom(args: readonly string[]): string | string[] {
  if (args.length === 1 && SHELL_SYNTAX.test(args[0]!)) return args[0]!;
  return [...args];
}
