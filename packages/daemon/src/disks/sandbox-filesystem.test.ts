import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SandboxFilesystem } from "./sandbox-filesystem.js";

/** `fsfreeze --freeze` of a frozen filesystem fails with EBUSY: a probe that never blocks on a write. */
function isFrozen(mount: string): boolean {
  const out = spawnSync("fsfreeze", ["--freeze", mount], { encoding: "utf8" });
  if (out.status === 0) spawnSync("fsfreeze", ["--unfreeze", mount]);
  return out.status !== 0 && /busy/i.test(out.stderr);
}

// Real loop-mounted ext4 disks and fsfreeze: root only.
describe.runIf(process.getuid?.() === 0)("sandbox filesystem: a fork's freeze and a crash's thaw", () => {
  let root: string;
  let fs: SandboxFilesystem;
  const lower = () => join(root, "lower");
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "stasis-fs-"));
    mkdirSync(lower());
    writeFileSync(join(lower(), "from-template"), "t");
    fs = new SandboxFilesystem(join(root, "sandboxes"));
    await fs.start();
    await fs.create("sbx_source", lower(), 64, 0);
  });
  afterAll(async () => {
    for (const id of ["sbx_source", "sbx_clone"]) {
      spawnSync("fsfreeze", ["--unfreeze", fs.paths(id).diskMount]);
      await fs.remove(id).catch(() => {});
    }
    rmSync(root, { recursive: true, force: true });
  });

  it("a clone copies the disk, and leaves the source thawed with no freeze mark", async () => {
    writeFileSync(join(fs.paths("sbx_source").rootfs, "written"), "before the fork");
    await fs.clone("sbx_source", ["sbx_clone"], lower(), 0);
    expect(readFileSync(join(fs.paths("sbx_clone").rootfs, "written"), "utf8")).toBe("before the fork");
    expect(isFrozen(fs.paths("sbx_source").diskMount)).toBe(false);
    expect(existsSync(fs.paths("sbx_source").freezeMark)).toBe(false);
  });

  it("thaw: a disk a crash left frozen (its mark present) is thawed and the mark goes", async () => {
    const p = fs.paths("sbx_source");
    writeFileSync(p.freezeMark, "");
    expect(spawnSync("fsfreeze", ["--freeze", p.diskMount]).status).toBe(0);
    await fs.thaw("sbx_source");
    expect(isFrozen(p.diskMount)).toBe(false);
    expect(existsSync(p.freezeMark)).toBe(false);
    writeFileSync(join(p.rootfs, "after"), "writable");
  });

  it("thaw: without a mark nothing is run (the restart's common case), and a second thaw is harmless", async () => {
    const p = fs.paths("sbx_source");
    expect(spawnSync("fsfreeze", ["--freeze", p.diskMount]).status).toBe(0);
    await fs.thaw("sbx_source");
    // Not asked: still frozen (only a fork freezes a disk, and it writes the mark first).
    expect(isFrozen(p.diskMount)).toBe(true);
    spawnSync("fsfreeze", ["--unfreeze", p.diskMount]);
    writeFileSync(p.freezeMark, "");
    await fs.thaw("sbx_source");
    await fs.thaw("sbx_source");
    expect(existsSync(p.freezeMark)).toBe(false);
  });
});
