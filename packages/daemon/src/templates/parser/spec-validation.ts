// Turns zod issues on a spec into one TemplateSpecError at the first offending line, with hints.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from "yaml";
import { z } from "zod";
import { TemplateSpecError } from "../template-definition.js";

/** Where a value sits in a spec: map keys and list indexes from the top. */
export type Path = readonly PropertyKey[];

/**
 * Validates with zod; the first problem in the file (by line) becomes a TemplateSpecError at its line.
 * `knownKeys` lists each map's keys by its path below `path` ("" for the value itself), for unknown-key hints.
 */
export function check<S extends z.ZodType>(schema: S, value: unknown, path: Path, lines: NodeLines, knownKeys: Record<string, readonly string[]> = {}): z.output<S> {
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

export function formatPath(path: Path): string {
  let out = "";
  for (const seg of path) out += typeof seg === "number" ? `[${seg}]` : out === "" ? String(seg) : `.${String(seg)}`;
  return out;
}

export function didYouMean(key: string, known: readonly string[]): string {
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
export class NodeLines {
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
