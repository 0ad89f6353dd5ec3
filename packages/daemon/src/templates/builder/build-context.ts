// The build context: COPY sources checked to stay inside it, hashed for the layer cache, and spec files read from it.
import { createHash } from "node:crypto";
import { constants, existsSync, realpathSync } from "node:fs";
import { lstat, open, readdir, readlink } from "node:fs/promises";
import { join, posix, resolve as resolvePath, sep } from "node:path";
import { BoundedReadError, readBoundedFile } from "../bounded-read.js";
import { TemplateSpecError, type BuildStep } from "../template-definition.js";
import { BuildStepError, isSymlink } from "./build-common.js";

/** A COPY source as a path relative to the context, refused if it leaves the context or is missing. */
export function contextPath(contextDir: string, source: string, step: BuildStep, n: number): string {
  const resolved = resolveContextSource(contextDir, source);
  if ("refused" in resolved) throw new BuildStepError(resolved.refused, n, step.text, step.line, "invalid_template");
  return resolved.rel;
}

/** Content hash of COPY sources: names, modes, file bytes and link targets. */
export async function hashCopySources(contextDir: string, step: Extract<BuildStep, { kind: "copy" }>, n: number): Promise<string> {
  const rels = step.sources.map((source) => contextPath(contextDir, source, step, n));
  return hashContextSources(contextDir, rels);
}

/**
 * A COPY source as a path relative to the context, or why it is refused: it leaves the context, is
 * missing, or a symlink on its way leads out. `.` (also `./`, `/`) is the context root itself.
 */
export function resolveContextSource(contextDir: string, source: string): { rel: string } | { refused: string } {
  const rel = posix.normalize(source.replace(/^\/+/, ""));
  if (rel === ".." || rel.startsWith("../")) return { refused: `COPY source '${source}' is outside the build context` };
  // The root has no parent inside the context: the parent check below refused `COPY . /app`.
  if (rel === "." || rel === "./") return { rel: "." };
  const full = resolvePath(contextDir, rel);
  if (!existsSync(full) && !isSymlink(full)) return { refused: `COPY source '${source}' is not in the build context` };
  // A symlink in the middle of the path could lead out of the context.
  const parent = realpathSync(resolvePath(full, ".."));
  const root = realpathSync(contextDir);
  if (parent !== root && !parent.startsWith(root + sep)) return { refused: `COPY source '${source}' leads outside the build context` };
  return { rel };
}

/**
 * sha256 over each source's tree: per entry `rel\0mode\0`, then the link target or the file's bytes, then
 * `\0`. Files are streamed, not read whole and synchronously: a large COPY source neither blocks the event
 * loop nor needs its size in memory. The bytes hashed are the same as before, so layer keys stay valid.
 */
export async function hashContextSources(contextDir: string, rels: string[]): Promise<string> {
  const h = createHash("sha256");
  const walk = async (path: string, rel: string): Promise<void> => {
    const st = await lstat(path);
    h.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) h.update(await readlink(path));
    else if (st.isDirectory()) for (const e of (await readdir(path)).sort()) await walk(join(path, e), `${rel}/${e}`);
    else if (st.isFile()) {
      const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        for await (const chunk of file.createReadStream({ autoClose: false })) h.update(chunk as Buffer);
      } finally {
        await file.close();
      }
    }
    h.update("\0");
  };
  for (const rel of rels) await walk(resolvePath(contextDir, rel), rel);
  return h.digest("hex");
}

/** Reads at most `limit` bytes of a spec file from the context (the caller has checked the path). */
export async function readContextFile(path: string, limit: number): Promise<string> {
  try {
    return (await readBoundedFile(path, limit)).toString("utf8");
  } catch (err) {
    if (!(err instanceof BoundedReadError) || err.reason === "missing") throw err;
    throw new TemplateSpecError(err.reason === "too_large" ? `the spec file is larger than ${limit} bytes` : `${path} is not a regular file`, null);
  }
}
