// What an imported image's config sets for its sandboxes, and what its rootfs needs to be a template.
import { constants } from "node:fs";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { shellQuote } from "../shell-quote.js";
import { isRecord, lstatOrNull } from "./untrusted-input.js";

export interface OciImageConfig {
  env: Record<string, string>;
  workdir: string | null;
  user: string | null;
  start: string | null;
}

export function toImageConfig(doc: unknown): OciImageConfig {
  const c = isRecord(doc) && isRecord(doc.config) ? doc.config : {};
  const strings = (v: unknown) => (Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : []);
  const env: Record<string, string> = {};
  for (const entry of strings(c.Env)) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const workdir = typeof c.WorkingDir === "string" && c.WorkingDir !== "" && c.WorkingDir !== "/" ? c.WorkingDir : null;
  const rawUser = typeof c.User === "string" ? c.User.trim() : "";
  const [name, group] = rawUser.split(":");
  const isRoot = (name === "" || name === "root" || name === "0") && (group === undefined || group === "0" || group === "root");
  const argv = [...strings(c.Entrypoint), ...strings(c.Cmd)];
  return { env, workdir, user: isRoot ? null : rawUser, start: argv.length ? argv.map(shellQuote).join(" ") : null };
}

// ---- rootfs ----

/**
 * Adds what a Stasis template needs. The image is untrusted: any of these paths may be a symlink to a host path,
 * so each is checked with lstat and replaced, never written through.
 */
export async function prepareRootfs(root: string): Promise<void> {
  await ensureDir(join(root, "tmp"), 0o1777, true);
  await ensureDir(join(root, "etc"), 0o755, false);
  const hosts = join(root, "etc", "hosts");
  if (!(await lstatOrNull(hosts))?.isFile()) {
    await rm(hosts, { recursive: true, force: true });
    await writeFile(hosts, "127.0.0.1 localhost sandbox\n::1 localhost\n", { flag: "wx", mode: 0o644 });
  }
  await ensureDir(join(root, ".stasis"), 0o755, false);
  const agent = join(root, ".stasis", "agent");
  const st = await lstatOrNull(agent);
  if (!st?.isFile() || st.size !== 0) {
    await rm(agent, { recursive: true, force: true });
    await writeFile(agent, "", { flag: "wx", mode: 0o755 });
  }
}

/** Makes `path` a real directory (replacing anything else there); `mode` is applied when created, or always with `forceMode`. */
async function ensureDir(path: string, mode: number, forceMode: boolean): Promise<void> {
  const st = await lstatOrNull(path);
  if (st?.isDirectory() && !forceMode) return;
  if (st && !st.isDirectory()) await rm(path, { recursive: true, force: true });
  if (!st?.isDirectory()) await mkdir(path);
  // Through an O_NOFOLLOW handle: chmod by path would follow a symlink.
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}
