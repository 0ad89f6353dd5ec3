import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StepFaults } from "../../../runtime/drivers/fake-faults.js";
import type { SandboxPaths } from "../../../disks/sandbox-filesystem.js";
import type { SandboxDisks } from "../sandbox-core.js";

export type DiskStep = "create" | "createFromImage" | "clone" | "copy" | "sync" | "thaw" | "mount" | "unmount" | "remove";

/** The host's mount table: it outlives a daemon, and a reboot empties it. */
export class FakeMounts {
  private readonly mounted = new Set<string>();
  /** Filesystems frozen (fsfreeze) for a consistent copy; a crash mid-copy leaves one frozen. */
  readonly frozen = new Set<string>();

  has(id: string): boolean {
    return this.mounted.has(id);
  }

  add(id: string): void {
    this.mounted.add(id);
  }

  delete(id: string): void {
    this.mounted.delete(id);
  }

  reboot(): void {
    this.mounted.clear();
    this.frozen.clear();
  }
}

/**
 * Sandbox disks without root: the real layout of folders under a temporary root, `disk.img` a small file
 * (copied on clone, as the real sparse image is), and "mounted" a set in the host's mount table.
 */
export class FakeDisks implements SandboxDisks {
  constructor(
    private readonly root: string,
    private readonly mounts: FakeMounts,
    readonly faults: StepFaults<string> = new StepFaults<string>(),
  ) {}

  paths(id: string): SandboxPaths {
    const dir = join(this.root, id);
    return { dir, diskImage: join(dir, "disk.img"), diskMount: join(dir, "disk"), rootfs: join(dir, "rootfs"), runtimeDir: join(dir, "runtime"), checkpointDir: join(dir, "checkpoint"), freezeMark: join(dir, "frozen") };
  }

  create(id: string, lowerdir: string, diskMiB: number, _owner: number): Promise<SandboxPaths> {
    return this.faults.run("create", id, () => {
      const p = this.makeDirs(id);
      writeFileSync(p.diskImage, JSON.stringify({ diskMiB, lowerdir }));
      this.mounts.add(id);
      return p;
    });
  }

  createFromImage(id: string, diskImage: string, _lowerdir: string, _owner: number): Promise<SandboxPaths> {
    return this.faults.run("createFromImage", id, () => {
      const p = this.makeDirs(id);
      copyFileSync(diskImage, p.diskImage);
      this.mounts.add(id);
      return p;
    });
  }

  unmount(id: string): Promise<void> {
    return this.faults.run("unmount", id, () => this.mounts.delete(id));
  }

  clone(sourceId: string, cloneIds: string[], _lowerdir: string, _owner: number): Promise<void> {
    return this.faults.run("clone", sourceId, async () => {
      const src = this.paths(sourceId);
      this.mounts.frozen.add(sourceId);
      await this.faults.run("copy", sourceId, () => {
        for (const id of cloneIds) copyFileSync(src.diskImage, this.makeDirs(id).diskImage);
      });
      this.mounts.frozen.delete(sourceId);
      for (const id of cloneIds) this.mounts.add(id);
    });
  }

  sync(id: string): Promise<void> {
    return this.faults.run("sync", id, () => undefined);
  }

  thaw(id: string): Promise<void> {
    return this.faults.run("thaw", id, () => void this.mounts.frozen.delete(id));
  }

  isMounted(id: string): Promise<boolean> {
    return Promise.resolve(this.mounts.has(id));
  }

  mount(id: string, _lowerdir: string, _owner: number): Promise<void> {
    return this.faults.run("mount", id, () => {
      if (!existsSync(this.paths(id).diskImage)) throw new Error(`sandbox ${id} has no disk image`);
      this.mounts.add(id);
    });
  }

  remove(id: string): Promise<void> {
    return this.faults.run("remove", id, () => {
      this.mounts.frozen.delete(id);
      this.mounts.delete(id);
      rmSync(this.paths(id).dir, { recursive: true, force: true });
    });
  }

  private makeDirs(id: string): SandboxPaths {
    const p = this.paths(id);
    for (const d of [p.runtimeDir, p.diskMount, p.rootfs]) mkdirSync(d, { recursive: true });
    return p;
  }
}
