// Copies of a template's rootfs with every owner shifted into a user namespace's host range (crun sandboxes).
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { chmod, lchown, lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Limiter } from "../../concurrency/limiter.js";
import { isAlive } from "../../runtime/run-command.js";
import type { ProgressFn } from "./manifests.js";
import { runLogged } from "./run-logged.js";

/** Owner changes in flight at once: the copy's tens of thousands of files, a syscall each. */
const SHIFT_PARALLELISM = 32;
/** How often a daemon waiting for another daemon's copy of the same template looks again. */
const WAIT_POLL_MS = 250;
/** A lock without a pid this old was left by a crash between its creation and its pid's write. */
const EMPTY_LOCK_STALE_MS = 10_000;
/** A lock this old is stale whoever holds it (its pid reused by another process): a copy takes seconds. */
const LOCK_STALE_MS = 10 * 60_000;

/** Leftovers of a shifted copy a crash interrupted, with the pid that made them (`cleanupStale`). */
export const UNFINISHED_SHIFTED_COPY = /^rootfs-uid\d+\.(?:view|empty|tmp)-(\d+)(?:-\d+)?$/;

/** Written last, once the copy is complete and in place: its presence means the copy can be used. */
const doneMark = (shifted: string) => `${shifted}.done`;
const isMade = (shifted: string) => existsSync(doneMark(shifted));

export class ShiftedCopies {
  /** Shifted copies being made: concurrent creates of the first crun sandboxes share one copy. */
  private readonly shifting = new Map<string, Promise<string>>();

  /** `shifted`, a copy of the merged view of the layers in overlay `lower`, made once. */
  flattened(lower: string, shifted: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    return this.once(shifted, () => this.makeFlattenedShiftedCopy(lower, shifted, uidShift, progress));
  }

  /** `shifted`, a copy of folder `plain`, made once. */
  copy(plain: string, shifted: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    return this.once(shifted, () => this.makeShiftedCopy(plain, shifted, uidShift, progress));
  }

  private async once(shifted: string, make: () => Promise<string>): Promise<string> {
    if (isMade(shifted)) return shifted;
    let pending = this.shifting.get(shifted);
    if (!pending) {
      pending = withCopyLock(shifted, make).finally(() => this.shifting.delete(shifted));
      this.shifting.set(shifted, pending);
    }
    return pending;
  }

  /** Copies the merged view of a layered template (a read-only overlay), then shifts its owners. */
  private async makeFlattenedShiftedCopy(lower: string, shifted: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    const view = `${shifted}.view-${process.pid}`;
    mkdirSync(view, { recursive: true });
    // A single lower layer cannot be an overlay of its own: a second, empty one makes it one.
    const empty = `${shifted}.empty-${process.pid}`;
    mkdirSync(empty, { recursive: true });
    await runLogged("mount", ["-t", "overlay", "overlay", "-o", `ro,nodev,lowerdir=${lower}:${empty}`, view]);
    try {
      return await this.makeShiftedCopy(view, shifted, uidShift, progress);
    } finally {
      await runLogged("umount", [view]).catch(() => runLogged("umount", ["-l", view]));
      rmSync(view, { recursive: true, force: true });
      rmSync(empty, { recursive: true, force: true });
    }
  }

  private async makeShiftedCopy(plain: string, shifted: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    progress?.(`copying ${plain} with owners shifted by ${uidShift} (once)`);
    const tmp = `${shifted}.tmp-${process.pid}-${Date.now()}`;
    await runLogged("cp", ["-a", "--reflink=auto", `${plain}/.`, tmp]);
    await shiftOwners(tmp, uidShift);
    // Under the lock and without `.done`: what is there is a crash's half-renamed leftover, used by nobody
    // (unless a lock was judged stale while its copy was still being made: then theirs is kept).
    if (isMade(shifted)) {
      rmSync(tmp, { recursive: true, force: true });
      return shifted;
    }
    rmSync(shifted, { recursive: true, force: true });
    renameSync(tmp, shifted);
    writeFileSync(doneMark(shifted), new Date().toISOString());
    return shifted;
  }
}

/**
 * Runs `make` holding `<shifted>.lock` (O_EXCL, with our pid), so that daemons sharing a templates folder
 * make each copy once: another's copy is waited for, never replaced under the sandboxes using it. A lock
 * whose daemon died is taken over.
 */
async function withCopyLock(shifted: string, make: () => Promise<string>): Promise<string> {
  const lock = `${shifted}.lock`;
  for (;;) {
    if (isMade(shifted)) return shifted;
    let fd: number;
    try {
      fd = openSync(lock, "wx");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (staleLock(lock)) rmSync(lock, { force: true });
      else await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
      continue;
    }
    try {
      writeSync(fd, String(process.pid));
      closeSync(fd);
      if (isMade(shifted)) return shifted;
      return await make();
    } finally {
      // Not when another daemon judged ours stale and took it over meanwhile.
      try {
        if (readFileSync(lock, "utf8").trim() === String(process.pid)) unlinkSync(lock);
      } catch {
        // gone already
      }
    }
  }
}

/** Whether a copy lock's daemon is gone: a dead pid, no pid long after its creation, or far too old. */
function staleLock(lock: string): boolean {
  let holder: number;
  let ageMs: number;
  try {
    holder = Number(readFileSync(lock, "utf8").trim() || "0");
    ageMs = Date.now() - statSync(lock).mtimeMs;
  } catch {
    return false; // released meanwhile: the next round takes it
  }
  if (ageMs > LOCK_STALE_MS) return true;
  // Just created, its pid not written yet (0): give its owner a moment.
  if (holder === 0) return ageMs > EMPTY_LOCK_STALE_MS;
  return holder !== process.pid && !isAlive(holder);
}

/** Adds `shift` to every owner under `root`, several files at a time (one syscall pair each, ~45k files). */
async function shiftOwners(root: string, shift: number): Promise<void> {
  const limiter = new Limiter(SHIFT_PARALLELISM);
  const shiftOne = async (path: string): Promise<string[]> => {
    const st = await lstat(path);
    await lchown(path, st.uid + shift, st.gid + shift);
    // chown clears setuid/setgid bits: put the mode back (symlinks have none).
    if (!st.isSymbolicLink() && st.mode & 0o6000) await chmod(path, st.mode & 0o7777);
    return st.isDirectory() ? (await readdir(path)).map((entry) => join(path, entry)) : [];
  };
  const visit = async (path: string): Promise<void> => {
    const children = await limiter.run(() => shiftOne(path));
    await Promise.all(children.map(visit));
  };
  await visit(root);
}
