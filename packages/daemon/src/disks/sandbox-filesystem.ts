import { chmodSync, chownSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { crashPoint } from "../runtime/crash-point.js";
import { mustRun as must, runCommand } from "../runtime/run-command.js";
import { hostDiskCommands, isMountpoint, unmount, type DiskCommands } from "./disk-commands.js";
import { DiskPool } from "./disk-pool.js";

export { unmount } from "./disk-commands.js";

export interface SandboxFilesystemOptions {
  /** Formatted disks kept ready per size (STASIS_DISK_POOL); 0 or absent: every create formats its own. */
  diskPool?: number;
  /** Disk sizes the pool keeps from the start (others are learned from creates). */
  primeSizesMiB?: number[];
  /** The host commands (tests inject their own). */
  commands?: DiskCommands;
  log?: Pick<Logger, "warn">;
}

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
  /** Present while the disk is (or may be) frozen for a fork's copy: a crash leaves it, and the next start thaws. */
  freezeMark: string;
}

/**
 * Each sandbox's writable layer is an ext4 image of `diskMiB` (sparse: it costs only what is written),
 * loop-mounted and used as the overlay's upper layer. A disk filler hits its own quota, never the host's
 * disk, and files stay on disk across hibernation and reboots.
 */
export class SandboxFilesystem {
  private readonly commands: DiskCommands;
  private readonly pool: DiskPool | undefined;

  constructor(
    private readonly root: string,
    options: SandboxFilesystemOptions = {},
  ) {
    this.commands = options.commands ?? hostDiskCommands;
    if ((options.diskPool ?? 0) > 0) {
      // Inside the root, so that a pooled disk's folder becomes a sandbox's by rename (sandbox ids never start with a dot).
      this.pool = new DiskPool({ dir: join(root, ".disk-pool"), perSize: options.diskPool ?? 0, primeSizesMiB: options.primeSizesMiB ?? [], commands: this.commands, ...(options.log ? { log: options.log } : {}) });
    }
  }

  /** Takes over or cleans up a previous daemon's pooled disks and starts filling the pool in the background. */
  async start(): Promise<void> {
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    await this.pool?.start();
  }

  /** Stops the pool's refill and unmounts and deletes its disks; sandboxes' disks stay mounted. */
  async stop(): Promise<void> {
    await this.pool?.stop();
  }

  paths(id: string): SandboxPaths {
    const dir = join(this.root, id);
    return {
      dir,
      diskImage: join(dir, "disk.img"),
      diskMount: join(dir, "disk"),
      rootfs: join(dir, "rootfs"),
      runtimeDir: join(dir, "runtime"),
      checkpointDir: join(dir, "checkpoint"),
      freezeMark: join(dir, "frozen"),
    };
  }

  /** Creates the disk and mounts the overlay. `owner` is the host uid of the sandbox's root (user namespaces). */
  async create(id: string, lowerdir: string, diskMiB: number, owner: number): Promise<SandboxPaths> {
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    // A pooled disk arrives formatted and mounted, as this sandbox's folder; otherwise it is made here.
    const pooled = this.pool?.take(diskMiB, this.paths(id).dir) ?? false;
    const p = this.makeDirs(id, owner, pooled);
    if (!pooled) await this.commands.format(p.diskImage, diskMiB);
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
    writeFileSync(src.freezeMark, "");
    await must("fsfreeze", ["--freeze", src.diskMount]);
    try {
      crashPoint("fork.copying");
      // Sparse-aware: a 4 GiB disk with 50 MB written copies 50 MB.
      for (const t of targets) await must("cp", ["--sparse=always", src.diskImage, t.diskImage]);
    } finally {
      await must("fsfreeze", ["--unfreeze", src.diskMount]);
      rmSync(src.freezeMark, { force: true });
    }
    for (const id of cloneIds) await this.mount(id, lowerdir, owner);
  }

  /**
   * Thaws the sandbox's filesystem if a crash left it frozen (a daemon killed mid-copy): its writes would
   * hang, and so would unmounting it. Only a disk with its freeze mark is asked (an `fsfreeze` run costs
   * ~100 ms on a loaded host, and a restart settles every sandbox before it listens); not mounted: nothing to do.
   */
  async thaw(id: string): Promise<void> {
    const p = this.paths(id);
    if (!existsSync(p.freezeMark)) return;
    if (await isMountpoint(p.diskMount)) {
      const out = await runCommand("fsfreeze", ["--unfreeze", p.diskMount], { timeoutMs: 10_000 });
      if (out.code !== 0 && !/Invalid argument/i.test(out.stderr)) throw new Error(`fsfreeze --unfreeze ${p.diskMount}: ${out.stderr.trim()}`);
    }
    rmSync(p.freezeMark, { force: true });
  }

  /** Flushes the sandbox's writable layer to disk (after a checkpoint: files must survive a host crash). */
  async sync(id: string): Promise<void> {
    await must("sync", ["-f", this.paths(id).diskMount]);
  }

  async isMounted(id: string): Promise<boolean> {
    const p = this.paths(id);
    return (await isMountpoint(p.diskMount)) && (await isMountpoint(p.rootfs));
  }

  /** `exists`: the folder is a pooled disk's, moved into place (mode 700, root's, with `runtime/`). */
  private makeDirs(id: string, owner: number, exists = false): SandboxPaths {
    const p = this.paths(id);
    // No other host user may reach a sandbox's files (a setuid file written by the sandbox would otherwise
    // be runnable from the host). The one exception is a user-namespaced root, which must traverse to its
    // own rootfs: it gets group search permission on its own directory only.
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    const mode = owner === 0 ? 0o700 : 0o710;
    if (exists) chmodSync(p.dir, mode);
    else mkdirSync(p.dir, { mode });
    if (owner !== 0) chownSync(p.dir, 0, owner);
    // A pooled folder brings its runtime folder, with the agent channel's pipes already made.
    if (!exists) mkdirSync(p.runtimeDir, { mode: 0o700 });
    mkdirSync(p.diskMount, { recursive: true });
    mkdirSync(p.rootfs, { recursive: true });
    return p;
  }

  /** Mounts the disk and the overlay (again, after a host reboot). */
  async mount(id: string, lowerdir: string, owner: number): Promise<void> {
    const p = this.paths(id);
    if (!(await isMountpoint(p.diskMount))) await this.commands.mount(p.diskImage, p.diskMount);
    const upper = join(p.diskMount, "upper");
    const work = join(p.diskMount, "work");
    for (const d of [upper, work]) {
      if (!existsSync(d)) {
        mkdirSync(d);
        chownSync(d, owner, owner);
      }
    }
    if (!(await isMountpoint(p.rootfs))) {
      // nodev: device nodes in a template's layers (an imported image may carry any) open nothing.
      await must("mount", ["-t", "overlay", "overlay", "-o", `nodev,lowerdir=${lowerdir},upperdir=${upper},workdir=${work}`, p.rootfs]);
    }
  }

  /** Unmounts and deletes everything of the sandbox. Idempotent. */
  async remove(id: string): Promise<void> {
    const p = this.paths(id);
    await this.thaw(id).catch(() => {});
    for (const target of [p.rootfs, p.diskMount]) await unmount(target);
    if (await isMountpoint(p.rootfs) || await isMountpoint(p.diskMount)) {
      throw new Error(`sandbox ${id}: its filesystem is still mounted; not deleting ${p.dir}`);
    }
    rmSync(p.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}
