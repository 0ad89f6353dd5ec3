// Bounds, patterns and checks that spec and Dockerfile parsing share.
import { posix } from "node:path";
import { TemplateSpecError } from "../template-definition.js";

export const MAX_SPEC_BYTES = 1024 * 1024;
export const MAX_STEPS = 500;
const MAX_TEXT = 200;
export const READY_TIMEOUT_MIN_MS = 1000;
export const READY_TIMEOUT_MAX_MS = 600_000;

/** `user`, `uid`, `user:group` or `uid:gid`, as USER and --chown take them. */
export const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?)?$/;
/** A Debian package, optionally `:arch`, `=version` or `/release`; never an apt-get option. */
export const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?(?:=[A-Za-z0-9.+~:-]+|\/[A-Za-z0-9.-]+)?$/;
export const ENV_NAME_RE = /^(?!__proto__$)[A-Za-z_][A-Za-z0-9_.-]*$/;
const WILDCARD_RE = /[*?[]/;

/** Bounds the file's size and refuses binary; drops a byte-order mark. */
export function checkSize(text: string): string {
  if (text.length > MAX_SPEC_BYTES || Buffer.byteLength(text, "utf8") > MAX_SPEC_BYTES) {
    throw new TemplateSpecError(`the file is larger than ${MAX_SPEC_BYTES / 1024 / 1024} MiB`, null);
  }
  const nul = text.indexOf("\0");
  if (nul >= 0) throw new TemplateSpecError("the file contains a NUL byte: is it a text file?", lineOfOffset(text, nul));
  return text.startsWith("\uFEFF") ? text.slice(1) : text;
}

export function lineOfOffset(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text[i] === "\n") line++;
  return line;
}

export function oneLine(text: string): string {
  return truncate(
    text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "")
      .join(" "),
  );
}

export function truncate(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;
}

/** COPY's sources and destination, as a spec's copy step and a Dockerfile's COPY/ADD take them. */
export function checkCopy(keyword: string, sources: string[], dest: string, line: number | null): void {
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
