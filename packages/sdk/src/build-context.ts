import type { Dirent } from "node:fs";
import { lstat, readdir, readFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { Pack } from "tar";
import { PayloadTooLargeError } from "./errors.js";

/** The daemon's default limit (STASIS_MAX_BUILD_CONTEXT_BYTES); a bigger context is refused before anything is sent. */
export const MAX_CONTEXT_BYTES = 4 * 1024 ** 3;

/** Read from the context root; `.stasisignore` replaces `.dockerignore` when both are there. */
export const IGNORE_FILES = [".stasisignore", ".dockerignore"] as const;

/** What the daemon looks for when the build names no file; sent even when an ignore rule matches them. */
export const DEFAULT_BUILD_FILES = ["stasis.yaml", "stasis.yml", "stasis.json", "Dockerfile"] as const;

interface Rule {
  regex: RegExp;
  negate: boolean;
}

/**
 * The .dockerignore rules Docker applies: patterns are relative to the context root (a leading `/` and a
 * trailing `/` change nothing), `*` and `?` stay within one path segment, `**` spans any number of them,
 * `!` re-includes, the last matching rule wins, and a rule that matches a directory covers all below it.
 */
export class IgnoreRules {
  private readonly rules: Rule[];

  constructor(patterns: readonly string[]) {
    this.rules = patterns.flatMap((pattern) => {
      const negate = pattern.startsWith("!");
      const cleaned = cleanPattern(negate ? pattern.slice(1).trim() : pattern);
      return cleaned === undefined ? [] : [{ regex: compile(cleaned), negate }];
    });
  }

  /** Parses the text of an ignore file: one pattern a line, `#` comments, blank lines skipped. */
  static parse(text: string): IgnoreRules {
    const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
    return new IgnoreRules(lines.filter((line) => !line.startsWith("#")).map((line) => line.trim()).filter((line) => line !== ""));
  }

  /** Whether some rule re-includes paths: then an excluded directory must still be searched. */
  get hasNegations(): boolean {
    return this.rules.some((r) => r.negate);
  }

  /** Whether a context-relative path (`a/b/c`, no leading `./`) is left out. */
  excludes(path: string): boolean {
    const prefixes = path.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
    let excluded = false;
    for (const rule of this.rules) {
      // Only a rule that could change the outcome needs testing (as Docker's matcher does).
      if (rule.negate !== excluded) continue;
      if (prefixes.some((p) => rule.regex.test(p))) excluded = !rule.negate;
    }
    return excluded;
  }
}

/** Docker's clean-up of a pattern; undefined for one that names nothing (`/`, `.`). */
function cleanPattern(pattern: string): string | undefined {
  if (pattern === "") return undefined;
  const cleaned = posix.normalize(pattern).replace(/^\/+/, "").replace(/\/+$/, "");
  return cleaned === "" || cleaned === "." ? undefined : cleaned;
}

function compile(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*" && pattern[i + 1] === "*") {
      i++;
      if (pattern[i + 1] === "/") i++;
      // `**` at the end matches everything below; elsewhere zero or more whole segments.
      re += i === pattern.length - 1 ? ".*" : "(?:.*/)?";
    } else if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "\\" && i + 1 < pattern.length) re += escape(pattern[++i]!);
    else if (ch === "[" && pattern.indexOf("]", i + 2) > i) {
      const end = pattern.indexOf("]", i + 2);
      const body = pattern.slice(i + 1, end);
      const negated = body.startsWith("!") || body.startsWith("^");
      re += `[${negated ? "^" : ""}${(negated ? body.slice(1) : body).replace(/[\\\]^[]/g, "\\$&")}]`;
      i = end;
    } else re += escape(ch);
  }
  return new RegExp(`^${re}$`, "s");
}

const escape = (ch: string) => ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export interface BuildContext {
  /** Context-relative paths in archive order: a directory comes before what is in it. */
  entries: string[];
  /** About what the tar will weigh: headers plus padded file contents. */
  bytes: number;
  /** The ignore file that applied, if any. */
  ignoreFile: string | null;
}

/**
 * Lists what of `dir` goes into the build context, honouring its ignore file unless `ignore` is false.
 * Symlinks are listed as links (never followed), sockets and devices are skipped. `keep` names files sent
 * whatever the rules say.
 */
export async function collectContext(dir: string, options: { keep?: readonly string[]; ignore?: boolean } = {}): Promise<BuildContext> {
  const { keep = [], ignore = true } = options;
  const { rules, ignoreFile } = ignore ? await readIgnoreRules(dir) : { rules: new IgnoreRules([]), ignoreFile: null };
  const kept = new Set(keep.map((k) => posix.normalize(k)));
  const keptBelow = (p: string) => [...kept].some((k) => k.startsWith(`${p}/`));
  let bytes = 1024; // the two zero blocks that end an archive
  const walk = async (rel: string): Promise<string[]> => {
    const out: string[] = [];
    const children: Dirent[] = await readdir(join(dir, rel), { withFileTypes: true });
    children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const child of children) {
      const path = rel === "" ? child.name : `${rel}/${child.name}`;
      const excluded = rules.excludes(path) && !kept.has(path);
      if (child.isDirectory()) {
        // Below an excluded directory, a `!` rule (or a kept file) may bring something back; the directory
        // comes along only if something does.
        const inner = !excluded || rules.hasNegations || keptBelow(path) ? await walk(path) : [];
        if (!excluded || inner.length > 0) {
          out.push(path, ...inner);
          bytes += 512;
        }
      } else if (!excluded && (child.isFile() || child.isSymbolicLink())) {
        out.push(path);
        const size = child.isFile() ? (await lstat(join(dir, path))).size : 0;
        bytes += 512 + Math.ceil(size / 512) * 512;
      }
    }
    return out;
  };
  return { entries: await walk(""), bytes, ignoreFile };
}

async function readIgnoreRules(dir: string): Promise<{ rules: IgnoreRules; ignoreFile: string | null }> {
  for (const name of IGNORE_FILES) {
    try {
      return { rules: IgnoreRules.parse(await readFile(join(dir, name), "utf8")), ignoreFile: name };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return { rules: new IgnoreRules([]), ignoreFile: null };
}

/**
 * Packs the listed entries of `dir` as an uncompressed tar stream. Uses Pack rather than `create` so that a
 * file named `@x` is packed as a file, not read as an archive to concatenate. `onError` learns why packing
 * failed (a file vanished, the context grew past `limit`) before fetch reports a bare upload failure.
 */
export function packEntries(dir: string, entries: readonly string[], options: { limit?: number; onError?: (err: Error) => void } = {}): ReadableStream<Uint8Array> {
  const pack = new Pack({ cwd: dir, portable: true, follow: false, noDirRecurse: true, strict: true });
  for (const entry of entries) pack.add(entry);
  pack.end();
  const limit = options.limit ?? Infinity;
  const tooBig = () =>
    new PayloadTooLargeError({ code: "payload_too_large", message: `the build context grew past ${formatBytes(limit)} while it was being packed`, status: null, retryable: false });
  return toWebStream(pack, (sent) => (sent > limit ? tooBig() : undefined), options.onError);
}

function toWebStream(pack: Pack, check: (sent: number) => Error | undefined, onError?: (err: Error) => void): ReadableStream<Uint8Array> {
  // Minipass throws an error emitted while no read is pending; the next read rejects with it anyway.
  pack.on("error", () => {});
  const chunks = pack[Symbol.asyncIterator]();
  let sent = 0;
  const fail = (err: Error) => {
    onError?.(err);
    pack.destroy();
    return err;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (err) {
        controller.error(fail(err instanceof Error ? err : new Error(String(err))));
        return;
      }
      if (next.done) return controller.close();
      sent += next.value.length;
      const tooBig = check(sent);
      if (tooBig) controller.error(fail(tooBig));
      else controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.length));
    },
    cancel() {
      pack.destroy();
    },
  });
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}
