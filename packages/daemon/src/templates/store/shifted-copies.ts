// Copies of a template's rootfs with every owner shifted into a user namespace's host range (crun sandboxes).
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { chmod, lchown } from "node:fs/promises";
import { join } from "node:path";
import type { ProgressFn } from "./manifests.js";
import { runLogged } from "./run-logged.js";

/** Leftovers of a shifted copy a crash interrupted, with the pid that made them (`cleanupStale`). */
export const UNFINISHED_SHIFTED_COPY = /^rootfs-uid\d+\.(?:view|empty|tmp)-(\d+)(?:-\d+)?$/;

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
    if (existsSync(`${shifted}.done`)) return shifted;
    let pending = this.shifting.get(shifted);
    if (!pending) {
      pending = make().finally(() => this.shifting.delete(shifted));
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
    rmSync(shifted, { recursive: true, force: true });
    renameSync(tmp, shifted);
    writeFileSync(`${shifted}.done`, new Date().toISOString());
    return shifted;
  }
}

async function shiftOwners(root: string, shift: number): Promise<void> {
  const stack = [root];
  while (stack.length > 0) {
    const path = stack.pop()!;
    const st = lstatSync(path);
    await lchown(path, st.uid + shift, st.gid + shift);
    // chown clears setuid/setgid bits: put the mode back (symlinks have none).
    if (!st.isSymbolicLink() && st.mode & 0o6000) await chmod(path, st.mode & 0o7777);
    if (st.isDirectory()) for (const entry of readdirSync(path)) stack.push(join(path, entry));
  }
}
