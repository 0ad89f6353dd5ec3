// Reading what an imported archive holds: it is untrusted, so every read is bounded and checked.
import type { Stats } from "node:fs";
import { lstat } from "node:fs/promises";
import { BoundedReadError, readBoundedFile } from "../bounded-read.js";

/** A problem with the archive the user gave (bad format, image not found, several images to choose from, ...). */
export class OciImportError extends Error {}

export const MAX_JSON_BYTES = 4 * 1024 * 1024;

export async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return null;
    throw err;
  }
}

export async function readBounded(path: string, strict: boolean, what: string): Promise<Buffer> {
  try {
    return await readBoundedFile(path, MAX_JSON_BYTES, { follow: !strict });
  } catch (err) {
    if (!(err instanceof BoundedReadError)) throw err;
    const why = { missing: "is missing from the archive", symlink: "is a symlink", not_regular: "is not a regular file", too_large: `is larger than ${MAX_JSON_BYTES >> 20} MiB` };
    throw new OciImportError(`${what} ${why[err.reason]}`);
  }
}

export function parseJson(data: Buffer, what: string): Record<string, unknown> | unknown[] {
  try {
    const value: unknown = JSON.parse(data.toString("utf8"));
    if (isRecord(value) || Array.isArray(value)) return value;
  } catch {
    // Reported below.
  }
  throw new OciImportError(`${what} is not valid JSON`);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
