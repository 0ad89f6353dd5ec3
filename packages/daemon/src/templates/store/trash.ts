// `<root>/.trash`: what is deleted is first renamed here, so a crash never leaves half of it in place.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { runLogged } from "./run-logged.js";

export class Trash {
  constructor(private readonly root: string) {}

  get dir(): string {
    return join(this.root, ".trash");
  }

  /**
   * Renames `path` into `<root>/.trash/<pid>-<unique>-<label>` (atomic, same filesystem); null if it is
   * gone already. What is in the trash is deleted by `purge`, or by `cleanupStale` after a crash.
   */
  move(path: string, label: string): string | null {
    const trash = this.dir;
    mkdirSync(trash, { recursive: true, mode: 0o700 });
    const target = join(trash, `${process.pid}-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}-${label}`);
    try {
      renameSync(path, target);
      return target;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /**
   * Deletes a folder out of everyone's sight (in the trash, or a dead process's leftover). Unmounts what a
   * crash left mounted below it first (a crun flattened copy's view); leaves it if that fails, and never
   * throws: `cleanupStale` tries again at the next start.
   */
  async purge(path: string): Promise<void> {
    try {
      if (!(await unmountBelow(path))) return;
      await rm(path, { recursive: true, force: true });
    } catch {
      // Left for the next cleanupStale.
    }
  }
}

/** Mount points at or below `dir` (in /proc/self/mounts, a space in a path is written `\040`). */
function mountsBelow(dir: string): string[] {
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => (l.split(" ")[1] ?? "").replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Unmounts (lazily) everything at or below `dir`; true once nothing is mounted there. */
async function unmountBelow(dir: string): Promise<boolean> {
  for (const m of mountsBelow(dir).reverse()) await runLogged("umount", ["-l", m]).catch(() => {});
  return mountsBelow(dir).length === 0;
}
