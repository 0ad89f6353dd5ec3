import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { FifoPair } from "../runtime/fifo-channel.js";
import type { DiskCommands } from "./disk-commands.js";

/** A pooled disk's folder: `<sizeMiB>m-<random>` once complete, `.tmp-` in front while it is being made. */
const READY = /^([1-9][0-9]{0,7})m-[0-9a-f]{12}$/;
const TEMP_PREFIX = ".tmp-";

export interface DiskPoolOptions {
  /** The pool's folder: on the same filesystem as the sandboxes' folders (a disk is handed out by rename). */
  dir: string;
  /** Disks kept ready per size; 0 turns the pool off. */
  perSize: number;
  /** Sizes kept from the start (the default disk size); others are learned from creates. */
  primeSizesMiB: number[];
  /** Distinct sizes kept at most: a new size pushes out the one used least recently. */
  maxSizes?: number;
  /** Wait after a disk is handed out before making its replacement, so that the refill stays off that create's boot (a gVisor boot takes ~0.2-1 s). */
  refillDelayMs?: number;
  commands: DiskCommands;
  log?: Pick<Logger, "warn">;
}

/**
 * Formatted, loop-mounted sandbox disks made ahead, so that a create only renames one into place
 * instead of running truncate, mkfs.ext4 and a loop mount on its path. Each pooled disk is a folder
 * laid out as a sandbox's: `disk.img`, `disk/` mounted, and `runtime/` with the agent channel's named
 * pipes (which the runtime otherwise makes with mkfifo processes at launch). It is made under a
 * temporary name and renamed once complete, so a crash never leaves a half-made disk where it could be
 * handed out. One disk is made at a time, at the lowest CPU priority.
 */
export class DiskPool {
  /** Ready disks per size, oldest first. */
  private readonly ready = new Map<number, string[]>();
  /** Sizes wanted, least recently used first. */
  private readonly sizes: number[] = [];
  /** Disks of sizes no longer wanted, deleted by the refill loop (which runs every slow command of the pool). */
  private readonly dropped: string[] = [];
  private refilling: Promise<void> | undefined;
  /** A disk was handed out while the refill ran: look again once it ends. */
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private started = false;
  private readonly maxSizes: number;
  private readonly refillDelayMs: number;

  constructor(private readonly opts: DiskPoolOptions) {
    this.maxSizes = Math.max(1, opts.maxSizes ?? 4);
    this.refillDelayMs = opts.refillDelayMs ?? 1_500;
    for (const size of opts.primeSizesMiB) this.want(size);
  }

  get enabled(): boolean {
    return this.opts.perSize > 0 && !this.stopped;
  }

  /** Ready disks per size (for tests and metrics). */
  counts(): Record<number, number> {
    return Object.fromEntries([...this.ready].map(([size, names]) => [size, names.length]));
  }

  /**
   * Takes over what a previous daemon left in the pool folder: complete, still mounted disks of a wanted
   * size are kept (up to the pool's size); everything else is unmounted and deleted. Then fills the pool
   * in the background.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(this.opts.dir).sort()) {
      const size = Number(READY.exec(name)?.[1] ?? NaN);
      const path = join(this.opts.dir, name);
      const keep =
        this.opts.perSize > 0 && this.sizes.includes(size) && (this.ready.get(size)?.length ?? 0) < this.opts.perSize && existsSync(join(path, "disk.img")) && (await this.opts.commands.isMounted(join(path, "disk")));
      if (keep) this.readyList(size).push(name);
      else await this.discard(path);
    }
    this.schedule(0);
  }

  /**
   * Moves a ready disk of `sizeMiB` to `target` (which must not exist): afterwards `target/disk.img` is
   * the formatted image and `target/disk` its mount. False when none is ready (the caller makes one).
   * A create of a size not kept yet makes it wanted, so the creates after it find one.
   */
  take(sizeMiB: number, target: string): boolean {
    if (!this.enabled) return false;
    this.want(sizeMiB);
    const names = this.ready.get(sizeMiB);
    this.schedule(this.refillDelayMs);
    // rename(2) would replace an empty folder: the target must be new.
    if (existsSync(target)) return false;
    while (names && names.length > 0) {
      const name = names.shift()!;
      const source = join(this.opts.dir, name);
      try {
        renameSync(source, target);
        return true;
      } catch (err) {
        this.opts.log?.warn({ disk: name, target, err: (err as Error).message }, "a pooled disk could not be handed out");
        // Still there: the target is at fault; the disk stays in the pool. Gone: try the next one.
        if (existsSync(source)) {
          names.unshift(name);
          return false;
        }
      }
    }
    return false;
  }

  /** Resolves once no refill is running or due (tests; a stop waits for the running one itself). */
  async settled(): Promise<void> {
    while (this.refilling || this.timer) {
      if (this.refilling) await this.refilling;
      else await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Stops refilling and unmounts and deletes every pooled disk (nothing is left mounted after a stop). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.refilling;
    for (const name of this.dropped.splice(0)) await this.discard(join(this.opts.dir, name));
    for (const [size, names] of this.ready) {
      for (const name of names) await this.discard(join(this.opts.dir, name));
      this.ready.delete(size);
    }
  }

  private readyList(size: number): string[] {
    let list = this.ready.get(size);
    if (!list) this.ready.set(size, (list = []));
    return list;
  }

  /** Marks a size as used now; the least recently used size beyond `maxSizes` is dropped with its disks. */
  private want(size: number): void {
    const at = this.sizes.indexOf(size);
    if (at >= 0) this.sizes.splice(at, 1);
    this.sizes.push(size);
    while (this.sizes.length > this.maxSizes) {
      const dropped = this.sizes.shift()!;
      const names = this.ready.get(dropped) ?? [];
      this.ready.delete(dropped);
      this.dropped.push(...names);
    }
  }

  /** Runs the refill loop after `delayMs` unless it is running or already due (a steady stream of creates does not postpone it). */
  private schedule(delayMs: number): void {
    if (!this.enabled || !this.started) return;
    if (this.refilling) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refilling = this.refill().finally(() => {
        this.refilling = undefined;
        if (this.again) {
          this.again = false;
          this.schedule(this.refillDelayMs);
        }
      });
    }, delayMs);
    this.timer.unref();
  }

  /** Makes disks one at a time until every wanted size has `perSize`; a failure pauses the refill. */
  private async refill(): Promise<void> {
    while (!this.stopped) {
      const name = this.dropped.shift();
      if (name !== undefined) {
        await this.discard(join(this.opts.dir, name));
        continue;
      }
      // Most recently used size first.
      const size = [...this.sizes].reverse().find((s) => (this.ready.get(s)?.length ?? 0) < this.opts.perSize);
      if (size === undefined) return;
      try {
        const made = await this.make(size);
        if (this.stopped || !this.sizes.includes(size)) await this.discard(join(this.opts.dir, made));
        else this.readyList(size).push(made);
      } catch (err) {
        this.opts.log?.warn({ sizeMiB: size, err: (err as Error).message }, "could not make a pooled disk; creates make their own until the next refill");
        return;
      }
    }
  }

  /** Formats and mounts one disk under a temporary name, then renames it to its ready name. */
  private async make(sizeMiB: number): Promise<string> {
    const name = `${sizeMiB}m-${randomBytes(6).toString("hex")}`;
    const temp = join(this.opts.dir, `${TEMP_PREFIX}${name}`);
    mkdirSync(temp, { mode: 0o700 });
    try {
      mkdirSync(join(temp, "disk"));
      mkdirSync(join(temp, "runtime"), { mode: 0o700 });
      const fifos = new FifoPair(join(temp, "runtime"));
      await this.opts.commands.makeFifos([fifos.inPath, fifos.outPath], { background: true });
      await this.opts.commands.format(join(temp, "disk.img"), sizeMiB, { background: true });
      await this.opts.commands.mount(join(temp, "disk.img"), join(temp, "disk"), { background: true });
      renameSync(temp, join(this.opts.dir, name));
      return name;
    } catch (err) {
      await this.discard(temp);
      throw err;
    }
  }

  /** Unmounts a pooled disk's mount and deletes its folder; a folder still mounted is left (never deleted through a mount). */
  private async discard(path: string): Promise<void> {
    const mount = join(path, "disk");
    try {
      if (await this.opts.commands.isMounted(mount)) await this.opts.commands.unmount(mount);
      if (await this.opts.commands.isMounted(mount)) throw new Error("still mounted");
      rmSync(path, { recursive: true, force: true });
    } catch (err) {
      this.opts.log?.warn({ path, err: (err as Error).message }, "could not remove a pooled disk");
    }
  }
}
