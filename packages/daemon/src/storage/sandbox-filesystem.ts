import { chmodSync, chownSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { mustRun as must, runCommand } from "../runtime/run-command.js";

export interface SandboxPaths {
  /** Everything of one sandbox lives below this directory. */
  dir: string;
  /** Sparse ext4 image holding the writable layer: the sandbox's disk quota, kept on disk. */
  diskImage: string;
  diskMount: string;
  /** The overlay (template below, the sandbox's writable layer above) that is the sandbox's `/`. */
  rootfs: string;
  /** The runtime's bundle, channel pipes and logs. */
  runtimeDir: string;
  /** The hibernated sandbox's memory image; complete once it exists (written under a temporary name). */
  checkpointDir: string;
}

/**
 * Each sandbox's writable layer is an ext4 image of `diskMiB` (sparse: it costs only what is written),
 * loop-mounted and used as the overlay's upper layer. A disk filler hits its own quota, never the host's
 * disk, and files stay on disk across hibernation and reboots.
 */
export class SandboxFilesystem {
  constructor(private readonly root: string) {}

  paths(id: string): SandboxPaths {
    const dir = join(this.root, id);
    return {
      dir,
      diskImage: join(dir, "disk.img"),
      diskMount: join(dir, "disk"),
      rootfs: join(dir, "rootfs"),
      runtimeDir: join(dir, "runtime"),
      checkpointDir: join(dir, "checkpoint"),
    };
  }

  /** Creates the disk and mounts the overlay. `owner` is the host uid of the sandbox's root (user namespaces). */
  async create(id: string, lowerdir: string, diskMiB: number, owner: number): Promise<SandboxPaths> {
    const p = this.makeDirs(id, owner);
    await must("truncate", ["-s", `${diskMiB}M`, p.diskImage]);
    chmodSync(p.diskImage, 0o600);
    await must("mkfs.ext4", ["-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", p.diskImage]);
    await this.mount(id, lowerdir, owner);
    return p;
  }

  /** Creates the sandbox's disk as a copy of a template snapshot's disk (sparse) and mounts the overlay. */
  async createFromImage(id: string, diskImage: string, lowerdir: string, owner: number): Promise<SandboxPaths> {
    const p = this.makeDirs(id, owner);
    await must("cp", ["--sparse=always", diskImage, p.diskImage]);
    chmodSync(p.diskImage, 0o600);
    await this.mount(id, lowerdir, owner);
    return p;
  }

  /** Unmounts the overlay and the disk, keeping the files (a template snapshot takes the disk image). */
  async unmount(id: string): Promise<void> {
    const p = this.paths(id);
    for (const target of [p.rootfs, p.diskMount]) await unmount(target);
    if ((await isMountpoint(p.rootfs)) || (await isMountpoint(p.diskMount))) throw new Error(`sandbox ${id}: its filesystem is still mounted`);
  }

  /**
   * Gives each clone a copy of the source's disk as it is now (for fork). The source's filesystem is
   * frozen during the copy so every copy is consistent; the source must not be running (checkpointed),
   * or its processes would stall on writes meanwhile.
   */
  async clone(sourceId: string, cloneIds: string[], lowerdir: string, owner: number): Promise<void> {
    const src = this.paths(sourceId);
    const targets = cloneIds.map((id) => this.makeDirs(id, owner));
    await must("fsfreeze", ["--freeze", src.diskMount]);
    try {
      // Sparse-aware: a 4 GiB disk with 50 MB written copies 50 MB.
      for (const t of targets) await must("cp", ["--sparse=always", src.diskImage, t.diskImage]);
    } finally {
      await must("fsfreeze", ["--unfreeze", src.diskMount]);
    }
    for (const id of cloneIds) await this.mount(id, lowerdir, owner);
  }

  /** Flushes the sandbox's writable layer to disk (after a checkpoint: files must survive a host crash). */
  async sync(id: string): Promise<void> {
    await must("sync", ["-f", this.paths(id).diskMount]);
  }

  async isMounted(id: string): Promise<boolean> {
    const p = this.paths(id);
    return (await isMountpoint(p.diskMount)) && (await isMountpoint(p.rootfs));
  }

  private makeDirs(id: string, owner: number): SandboxPaths {
    const p = this.paths(id);
    // No other host user may reach a sandbox's files (a setuid file written by the sandbox would otherwise
    // be runnable from the host). The one exception is a user-namespaced root, which must traverse to its
    // own rootfs: it gets group search permission on its own directory only.
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    mkdirSync(p.dir, { mode: owner === 0 ? 0o700 : 0o710 });
    if (owner !== 0) chownSync(p.dir, 0, owner);
    mkdirSync(p.runtimeDir, { mode: 0o700 });
    mkdirSync(p.diskMount, { recursive: true });
    mkdirSync(p.rootfs, { recursive: true });
    return p;
  }

  /** Mounts the disk and the overlay (again, after a host reboot). */
  async mount(id: string, lowerdir: string, owner: number): Promise<void> {
    const p = this.paths(id);
    // nodev: device nodes in a template's layers (an imported image may carry any) or on the disk open
    // nothing, on either runtime (gVisor's gofer opened them too); the runtimes mount their own /dev.
    if (!(await isMountpoint(p.diskMount))) await must("mount", ["-o", "loop,noatime,nodev", p.diskImage, p.diskMount]);
    const upper = join(p.diskMount, "upper");
    const work = join(p.diskMount, "work");
    for (const d of [upper, work]) {
      if (!existsSync(d)) {
        mkdirSync(d);
        chownSync(d, owner, owner);
      }
    }
    if (!(await isMountpoint(p.rootfs))) {
      await must("mount", ["-t", "overlay", "overlay", "-o", `nodev,lowerdir=${lowerdir},upperdir=${upper},workdir=${work}`, p.rootfs]);
    }
  }

  /** Unmounts and deletes everything of the sandbox. Idempotent. */
  async remove(id: string): Promise<void> {
    const p = this.paths(id);
    for (const target of [p.rootfs, p.diskMount]) await unmount(target);
    if (await isMountpoint(p.rootfs) || await isMountpoint(p.diskMount)) {
      throw new Error(`sandbox ${id}: its filesystem is still mounted; not deleting ${p.dir}`);
    }
    rmSync(p.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}

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
async function isMountpoint(path: string): Promise<boolean> {
  const mounts = await readFile("/proc/self/mounts", "utf8");
  return mounts.split("\n").some((line) => line.split(" ")[1] === path);
}
