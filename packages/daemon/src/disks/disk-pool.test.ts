import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { DiskCommands } from "./disk-commands.js";
import { DiskPool, type DiskPoolOptions } from "./disk-pool.js";

/**
 * Stand-ins for mkfs and the loop mount: a "mount" is a marker file inside the target folder, so that it
 * follows the folder through a rename as a real mount does.
 */
class FakeDisks implements DiskCommands {
  formats: { image: string; sizeMiB: number; background: boolean }[] = [];
  unmounts: string[] = [];
  failFormat = false;
  failUnmount = false;

  async format(image: string, sizeMiB: number, opts?: { background?: boolean }): Promise<void> {
    await Promise.resolve();
    if (this.failFormat) throw new Error("mkfs.ext4 failed: no space left");
    writeFileSync(image, `ext4 ${sizeMiB}`);
    this.formats.push({ image, sizeMiB, background: opts?.background ?? false });
  }
  async mount(_image: string, target: string): Promise<void> {
    await Promise.resolve();
    writeFileSync(join(target, ".mounted"), "");
  }
  async makeFifos(paths: string[]): Promise<void> {
    await Promise.resolve();
    for (const path of paths) writeFileSync(path, "fifo");
  }
  async unmount(target: string): Promise<void> {
    await Promise.resolve();
    this.unmounts.push(target);
    if (!this.failUnmount) rmSync(join(target, ".mounted"), { force: true });
  }
  async isMounted(target: string): Promise<boolean> {
    await Promise.resolve();
    return existsSync(join(target, ".mounted"));
  }
}

let root: string;
let disks: FakeDisks;
let warnings: string[];
const pools: DiskPool[] = [];

function pool(opts: Partial<DiskPoolOptions> = {}): DiskPool {
  const p = new DiskPool({ dir: join(root, ".disk-pool"), perSize: 2, primeSizesMiB: [4096], refillDelayMs: 0, commands: disks, log: { warn: (_fields: object, msg: string) => warnings.push(msg) } as unknown as DiskPoolOptions["log"], ...opts });
  pools.push(p);
  return p;
}

const entries = () => readdirSync(join(root, ".disk-pool")).sort();

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "disk-pool-"));
  disks = new FakeDisks();
  warnings = [];
});

afterEach(async () => {
  for (const p of pools.splice(0)) await p.stop();
  rmSync(root, { recursive: true, force: true });
});

describe("DiskPool", () => {
  it("fills every primed size in the background, at low priority, under names that say the size", async () => {
    const p = pool({ primeSizesMiB: [4096, 1024] });
    await p.start();
    await p.settled();
    expect(p.counts()).toEqual({ 4096: 2, 1024: 2 });
    expect(disks.formats.every((f) => f.background)).toBe(true);
    expect(entries()).toHaveLength(4);
    for (const name of entries()) {
      expect(name).toMatch(/^(4096|1024)m-[0-9a-f]{12}$/);
      expect(existsSync(join(root, ".disk-pool", name, "disk", ".mounted"))).toBe(true);
    }
  });

  it("hands out a formatted, mounted disk by moving it to the target, then makes its replacement", async () => {
    const p = pool();
    await p.start();
    await p.settled();
    const target = join(root, "sbx_1");
    expect(p.take(4096, target)).toBe(true);
    expect(readFileSync(join(target, "disk.img"), "utf8")).toBe("ext4 4096");
    expect(existsSync(join(target, "disk", ".mounted"))).toBe(true);
    // The agent channel's pipes, where the runtime looks for them (it makes none that exist).
    expect(readdirSync(join(target, "runtime")).sort()).toEqual(["agent.in", "agent.out"]);
    expect(p.counts()).toEqual({ 4096: 1 });
    await p.settled();
    expect(p.counts()).toEqual({ 4096: 2 });
    expect(disks.formats).toHaveLength(3);
  });

  it("runs dry under a burst, and the creates after it find disks again", async () => {
    const p = pool();
    await p.start();
    await p.settled();
    const took = [1, 2, 3].map((i) => p.take(4096, join(root, `sbx_${i}`)));
    expect(took).toEqual([true, true, false]);
    expect(existsSync(join(root, "sbx_3"))).toBe(false);
    await p.settled();
    expect(p.counts()).toEqual({ 4096: 2 });
  });

  it("learns a size from a create that found none, and drops the least recently used size beyond maxSizes", async () => {
    const p = pool({ maxSizes: 2 });
    await p.start();
    await p.settled();
    expect(p.take(2048, join(root, "sbx_a"))).toBe(false);
    await p.settled();
    expect(p.counts()).toEqual({ 4096: 2, 2048: 2 });
    expect(p.take(2048, join(root, "sbx_b"))).toBe(true);
    // A third size pushes out 4096 (used least recently): its disks are unmounted and deleted.
    expect(p.take(512, join(root, "sbx_c"))).toBe(false);
    await p.settled();
    expect(p.counts()).toEqual({ 2048: 2, 512: 2 });
    expect(entries().filter((n) => n.startsWith("4096m-"))).toEqual([]);
    expect(disks.unmounts.filter((u) => u.includes("4096m-"))).toHaveLength(2);
  });

  it("takes over a crashed daemon's complete mounted disks and removes the rest, never through a mount", async () => {
    const dir = join(root, ".disk-pool");
    const leave = (name: string, mounted: boolean, image = true) => {
      mkdirSync(join(dir, name, "disk"), { recursive: true });
      if (image) writeFileSync(join(dir, name, "disk.img"), "ext4");
      if (mounted) writeFileSync(join(dir, name, "disk", ".mounted"), "");
    };
    leave("4096m-aaaaaaaaaaaa", true); // kept
    leave("4096m-bbbbbbbbbbbb", false); // after a reboot: not mounted, removed
    leave(".tmp-4096m-cccccccccccc", true); // half made: unmounted and removed
    leave("1024m-dddddddddddd", true); // a size not wanted: unmounted and removed
    leave("4096m-eeeeeeeeeeee", true, false); // no image: removed
    writeFileSync(join(dir, "junk"), "");
    const p = pool();
    await p.start();
    expect(entries()).toEqual(["4096m-aaaaaaaaaaaa"]);
    expect(disks.unmounts.map((u) => u.slice(dir.length + 1)).sort()).toEqual([".tmp-4096m-cccccccccccc/disk", "1024m-dddddddddddd/disk", "4096m-eeeeeeeeeeee/disk"]);
    await p.settled();
    expect(p.counts()).toEqual({ 4096: 2 });
    expect(disks.formats).toHaveLength(1);
  });

  it("keeps a folder whose disk will not unmount instead of deleting through the mount", async () => {
    const dir = join(root, ".disk-pool");
    mkdirSync(join(dir, ".tmp-4096m-cccccccccccc", "disk"), { recursive: true });
    writeFileSync(join(dir, ".tmp-4096m-cccccccccccc", "disk", ".mounted"), "");
    disks.failUnmount = true;
    const p = pool({ perSize: 0 });
    await p.start();
    expect(entries()).toEqual([".tmp-4096m-cccccccccccc"]);
    expect(warnings).toContain("could not remove a pooled disk");
  });

  it("leaves nothing half made when a format fails, and creates then make their own", async () => {
    disks.failFormat = true;
    const p = pool();
    await p.start();
    await p.settled();
    expect(entries()).toEqual([]);
    expect(warnings).toContain("could not make a pooled disk; creates make their own until the next refill");
    expect(p.take(4096, join(root, "sbx_1"))).toBe(false);
    disks.failFormat = false;
    await p.settled();
    expect(p.counts()).toEqual({ 4096: 2 });
  });

  it("is off at size 0: hands out nothing and makes nothing", async () => {
    const p = pool({ perSize: 0 });
    await p.start();
    await p.settled();
    expect(p.take(4096, join(root, "sbx_1"))).toBe(false);
    expect(disks.formats).toEqual([]);
    expect(entries()).toEqual([]);
  });

  it("stops: waits for the disk being made, then unmounts and deletes every pooled disk", async () => {
    const p = pool();
    await p.start();
    await p.settled();
    p.take(4096, join(root, "sbx_1")); // a refill is due
    await p.stop();
    expect(entries()).toEqual([]);
    expect(p.take(4096, join(root, "sbx_2"))).toBe(false);
    // The handed-out disk is the sandbox's: a stop leaves it alone.
    expect(existsSync(join(root, "sbx_1", "disk", ".mounted"))).toBe(true);
  });
});

describe("DiskPool refill timing", () => {
  it("waits refillDelayMs after a hand-out, but a steady stream of creates does not postpone the refill", async () => {
    const p = pool({ perSize: 4, refillDelayMs: 50 });
    await p.start();
    await p.settled();
    const initial = disks.formats.length;
    for (let i = 0; i < 20; i++) {
      p.take(4096, join(root, `sbx_${i}`));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(disks.formats.length).toBeGreaterThan(initial);
  });
});

describe("DiskPool hand-out failures", () => {
  it("refuses a target that exists and keeps its disk; skips a disk removed behind its back", async () => {
    const p = pool();
    await p.start();
    await p.settled();
    mkdirSync(join(root, "sbx_taken"));
    expect(p.take(4096, join(root, "sbx_taken"))).toBe(false);
    expect(p.counts()).toEqual({ 4096: 2 });
    // The oldest disk (handed out first) vanishes.
    const oldest = /\.tmp-([^/]+)\/disk\.img$/.exec(disks.formats[0]!.image)![1]!;
    rmSync(join(root, ".disk-pool", oldest), { recursive: true });
    expect(p.take(4096, join(root, "sbx_1"))).toBe(true);
    expect(p.counts()).toEqual({ 4096: 0 });
    expect(warnings).toEqual(["a pooled disk could not be handed out"]);
    await p.settled();
    expect(p.counts()).toEqual({ 4096: 2 });
  });
});
