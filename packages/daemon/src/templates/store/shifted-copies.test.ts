import { chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ShiftedCopies } from "./shifted-copies.js";

const SHIFT = 100_000;
/** A pid no process has (above the kernel's pid_max). */
const DEAD = 4_194_400;

// Owners can only be changed as root (the daemon runs as root; so does `npm test`).
describe.runIf(process.getuid?.() === 0)("shifted copies of a template's rootfs", () => {
  let root: string;
  let plain: string;
  let shifted: string;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "stasis-shifted-"));
    plain = join(root, "rootfs");
    shifted = join(root, `rootfs-uid${SHIFT}`);
    mkdirSync(join(plain, "usr/bin"), { recursive: true });
    mkdirSync(join(plain, "home/user"), { recursive: true });
    for (let i = 0; i < 200; i++) writeFileSync(join(plain, "usr/bin", `tool${i}`), "x");
    writeFileSync(join(plain, "usr/bin/su"), "x");
    chmodSync(join(plain, "usr/bin/su"), 0o4755);
    writeFileSync(join(plain, "home/user/notes"), "mine");
    symlinkSync("/usr/bin/tool1", join(plain, "home/user/link"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const ownerOf = (path: string) => {
    const st = lstatSync(path);
    return { uid: st.uid, gid: st.gid };
  };

  it("shifts every owner, symlinks included, keeps setuid bits, and marks the copy done", async () => {
    chownSync(join(plain, "home/user"), 1000, 1000);
    chownSync(join(plain, "home/user/notes"), 1000, 1000);
    lchownSync(join(plain, "home/user/link"), 1000, 1000);
    const copies = new ShiftedCopies();
    const lines: string[] = [];
    expect(await copies.copy(plain, shifted, SHIFT, (l) => lines.push(l))).toBe(shifted);
    expect(lines).toHaveLength(1);
    expect(ownerOf(shifted)).toEqual({ uid: SHIFT, gid: SHIFT });
    expect(ownerOf(join(shifted, "usr/bin/tool199"))).toEqual({ uid: SHIFT, gid: SHIFT });
    expect(ownerOf(join(shifted, "home/user"))).toEqual({ uid: SHIFT + 1000, gid: SHIFT + 1000 });
    expect(ownerOf(join(shifted, "home/user/notes"))).toEqual({ uid: SHIFT + 1000, gid: SHIFT + 1000 });
    expect(ownerOf(join(shifted, "home/user/link"))).toEqual({ uid: SHIFT + 1000, gid: SHIFT + 1000 });
    expect(lstatSync(join(shifted, "usr/bin/su")).mode & 0o7777).toBe(0o4755);
    expect(existsSync(`${shifted}.done`)).toBe(true);
    expect(existsSync(`${shifted}.lock`)).toBe(false);
    // The source is untouched.
    expect(ownerOf(join(plain, "usr/bin/tool1"))).toEqual({ uid: 0, gid: 0 });
  });

  it("makes one copy for creates asking at once, and none once it is done", async () => {
    const copies = new ShiftedCopies();
    const lines: string[] = [];
    const made = await Promise.all([1, 2, 3].map(() => copies.copy(plain, shifted, SHIFT, (l) => lines.push(l))));
    expect(made).toEqual([shifted, shifted, shifted]);
    expect(lines).toHaveLength(1);
    await new ShiftedCopies().copy(plain, shifted, SHIFT, (l) => lines.push(l));
    expect(lines).toHaveLength(1);
  });

  it("waits for another live daemon's copy instead of replacing it under its sandboxes", async () => {
    // Pid 1 holds the lock: another daemon making the same copy.
    writeFileSync(`${shifted}.lock`, "1");
    const lines: string[] = [];
    const waiting = new ShiftedCopies().copy(plain, shifted, SHIFT, (l) => lines.push(l));
    await new Promise((r) => setTimeout(r, 600));
    mkdirSync(shifted);
    writeFileSync(join(shifted, "theirs"), "");
    writeFileSync(`${shifted}.done`, "");
    rmSync(`${shifted}.lock`);
    expect(await waiting).toBe(shifted);
    expect(lines).toEqual([]);
    expect(existsSync(join(shifted, "theirs"))).toBe(true);
  });

  it("takes over a lock left without a pid by a crash, once it is old", async () => {
    writeFileSync(`${shifted}.lock`, "");
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${shifted}.lock`, old, old);
    expect(await new ShiftedCopies().copy(plain, shifted, SHIFT)).toBe(shifted);
    expect(existsSync(join(shifted, "usr/bin/tool0"))).toBe(true);
    expect(existsSync(`${shifted}.lock`)).toBe(false);
  });

  it("takes over a dead daemon's lock and replaces its half-renamed copy", async () => {
    writeFileSync(`${shifted}.lock`, String(DEAD));
    mkdirSync(shifted);
    writeFileSync(join(shifted, "half"), "");
    expect(await new ShiftedCopies().copy(plain, shifted, SHIFT)).toBe(shifted);
    expect(existsSync(join(shifted, "half"))).toBe(false);
    expect(existsSync(join(shifted, "usr/bin/tool0"))).toBe(true);
    expect(existsSync(`${shifted}.lock`)).toBe(false);
  });
});
