import { chmodSync, closeSync, openSync, ftruncateSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { mustRun, runCommand } from "../runtime/run-command.js";

/** The host commands behind a sandbox disk; injected so that the pool's logic is testable without root. */
export interface DiskCommands {
  /** Makes `image` a sparse ext4 image of `sizeMiB` (root-owned root folder, no reserved blocks). */
  format(image: string, sizeMiB: number, opts?: { background?: boolean }): Promise<void>;
  /** Loop-mounts `image` on `target` with the sandbox disks' options (noatime, nodev). */
  mount(image: string, target: string, opts?: { background?: boolean }): Promise<void>;
  /** Makes named pipes (mode 600). */
  makeFifos(paths: string[], opts?: { background?: boolean }): Promise<void>;
  unmount(target: string): Promise<void>;
  isMounted(target: string): Promise<boolean>;
}

/** Background work (the disk pool's refill) yields the CPU and the disk to everything else. */
function low(cmd: string, args: string[], background: boolean | undefined): [string, string[]] {
  return background ? ["nice", ["-n", "19", "ionice", "-c", "2", "-n", "7", cmd, ...args]] : [cmd, args];
}

export const hostDiskCommands: DiskCommands = {
  async format(image, sizeMiB, opts) {
    // A sparse file of the disk's size, made here rather than by spawning truncate(1).
    const fd = openSync(image, "wx", 0o600);
    try {
      ftruncateSync(fd, sizeMiB * 1024 * 1024);
    } finally {
      closeSync(fd);
    }
    chmodSync(image, 0o600);
    await mustRun(...low("mkfs.ext4", ["-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", image], opts?.background));
  },
  async mount(image, target, opts) {
    // nodev: device nodes in a template's layers (an imported image may carry any) or on the disk open
    // nothing, on either runtime (gVisor's gofer opened them too); the runtimes mount their own /dev.
    await mustRun(...low("mount", ["-o", "loop,noatime,nodev", image, target], opts?.background));
  },
  async makeFifos(paths, opts) {
    await mustRun(...low("mkfifo", ["-m", "0600", ...paths], opts?.background));
  },
  async unmount(target) {
    await unmount(target);
  },
  isMounted: isMountpoint,
};

/** Unmounts, retrying briefly while a dying runtime still holds the mount, then detaches it lazily. */
export async function unmount(target: string): Promise<void> {
  for (let attempt = 0; attempt < 5 && (await isMountpoint(target)); attempt++) {
    const out = await runCommand("umount", [target], { timeoutMs: 30_000 });
    if (out.code === 0) return;
    await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
  }
  if (await isMountpoint(target)) await runCommand("umount", ["-l", target], { timeoutMs: 30_000 });
}

/** Reads the mount table directly: cheaper than spawning mountpoint(1) on the create path. */
export async function isMountpoint(path: string): Promise<boolean> {
  const mounts = await readFile("/proc/self/mounts", "utf8");
  return mounts.split("\n").some((line) => line.split(" ")[1] === path);
}
