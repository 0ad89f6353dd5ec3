import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FailedSandboxFiles } from "./failed-files.js";

const root = mkdtempSync(join(tmpdir(), "failed-files-"));
const outside = mkdtempSync(join(tmpdir(), "failed-outside-"));
writeFileSync(join(outside, "secret"), "host secret");
mkdirSync(join(root, "root/sub"), { recursive: true });
writeFileSync(join(root, "root/kept.txt"), "kept");
writeFileSync(join(root, "secret"), "the sandbox's own");
symlinkSync("/root/kept.txt", join(root, "root/abs-link"));
symlinkSync("../../../../../secret", join(root, "root/sub/up-link"));
symlinkSync(join(outside, "secret"), join(root, "root/host-link"));
symlinkSync("loop-b", join(root, "root/loop-a"));
symlinkSync("loop-a", join(root, "root/loop-b"));
symlinkSync("/nowhere", join(root, "root/dangling"));
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

const files = new FailedSandboxFiles(root, 0);
const text = async (path: string) => {
  const { body } = await files.read(path);
  const parts: Buffer[] = [];
  for await (const b of body) parts.push(b);
  return Buffer.concat(parts).toString();
};

describe("a failed sandbox's files, read from the host", () => {
  it("reads, stats and lists as inside the sandbox", async () => {
    expect(await text("/root/kept.txt")).toBe("kept");
    expect(await files.stat("/root/kept.txt")).toMatchObject({ name: "kept.txt", path: "/root/kept.txt", type: "file", size: 4 });
    expect(await files.stat("/root/abs-link")).toMatchObject({ type: "symlink", symlinkTarget: "/root/kept.txt" });
    const list = await files.list("/root", 2);
    expect(list.entries.map((e) => e.path)).toContain("/root/sub/up-link");
  });

  it("resolves symlinks inside the sandbox's root, never the host's", async () => {
    expect(await text("/root/abs-link")).toBe("kept");
    expect(await text("/root/sub/up-link")).toBe("the sandbox's own");
    // An absolute link to a host path is resolved in the sandbox: that path does not exist there.
    await expect(text("/root/host-link")).rejects.toMatchObject({ code: "file_not_found" });
    await expect(text("/../../secret")).resolves.toBe("the sandbox's own");
  });

  it("refuses loops, dangling links, directories and relative paths with 4xx codes", async () => {
    await expect(files.read("/root/loop-a")).rejects.toMatchObject({ code: "invalid_request" });
    await expect(files.read("/root/dangling")).rejects.toMatchObject({ code: "file_not_found" });
    await expect(files.read("/root")).rejects.toMatchObject({ code: "is_a_directory" });
    await expect(files.read("root/kept.txt")).rejects.toMatchObject({ code: "invalid_request" });
    await expect(files.list("/root/kept.txt", 1)).rejects.toMatchObject({ code: "not_a_directory" });
  });
});
