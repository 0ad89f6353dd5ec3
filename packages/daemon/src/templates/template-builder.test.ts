import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BuildStep } from "./template-definition.js";
import { hashContextSources, resolveContextSource, resolveUser } from "./template-builder.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "stasis-builder-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("resolveContextSource", () => {
  beforeEach(() => {
    mkdirSync(join(dir, "ctx", "sub"), { recursive: true });
    writeFileSync(join(dir, "ctx", "a.txt"), "a");
    mkdirSync(join(dir, "outside"));
    writeFileSync(join(dir, "outside", "secret"), "s");
    symlinkSync(join(dir, "outside"), join(dir, "ctx", "out"));
  });

  it("takes `.`, `./` and `/` as the context root", () => {
    const ctx = join(dir, "ctx");
    for (const s of [".", "./", "/", "sub/.."]) expect(resolveContextSource(ctx, s)).toEqual({ rel: "." });
  });

  it("takes paths inside the context", () => {
    const ctx = join(dir, "ctx");
    expect(resolveContextSource(ctx, "a.txt")).toEqual({ rel: "a.txt" });
    expect(resolveContextSource(ctx, "./sub/")).toEqual({ rel: "sub/" });
  });

  it("refuses what leaves the context or is missing", () => {
    const ctx = join(dir, "ctx");
    expect(resolveContextSource(ctx, "..")).toMatchObject({ refused: expect.stringMatching(/outside the build context/) });
    expect(resolveContextSource(ctx, "./../outside")).toMatchObject({ refused: expect.stringMatching(/outside the build context/) });
    expect(resolveContextSource(ctx, "out/secret")).toMatchObject({ refused: expect.stringMatching(/leads outside/) });
    expect(resolveContextSource(ctx, "nope")).toMatchObject({ refused: expect.stringMatching(/not in the build context/) });
  });
});

describe("hashContextSources", () => {
  it("hashes the same bytes as the former synchronous hash", async () => {
    const ctx = join(dir, "ctx");
    mkdirSync(join(ctx, "d", "e"), { recursive: true });
    writeFileSync(join(ctx, "d", "big"), Buffer.alloc(3 * 1024 * 1024 + 7, 5));
    writeFileSync(join(ctx, "d", "e", "f"), "hello");
    symlinkSync("../big", join(ctx, "d", "e", "link"));
    writeFileSync(join(ctx, "top"), "");
    // The former implementation, verbatim.
    const old = (rels: string[]) => {
      const h = createHash("sha256");
      const walk = (path: string, rel: string) => {
        const st = lstatSync(path);
        h.update(`${rel}\0${st.mode}\0`);
        if (st.isSymbolicLink()) h.update(readlinkSync(path));
        else if (st.isDirectory()) for (const e of readdirSync(path).sort()) walk(join(path, e), `${rel}/${e}`);
        else if (st.isFile()) h.update(readFileSync(path));
        h.update("\0");
      };
      for (const rel of rels) walk(resolve(ctx, rel), rel);
      return h.digest("hex");
    };
    for (const rels of [["."], ["d", "top"], ["d/e/link"]]) expect(await hashContextSources(ctx, rels)).toBe(old(rels));
  });
});

describe("resolveUser", () => {
  const step = { kind: "user", user: "app", line: 3, text: "USER app" } as unknown as BuildStep;

  it("looks names up in a plain /etc/passwd and /etc/group", async () => {
    mkdirSync(join(dir, "etc"));
    writeFileSync(join(dir, "etc", "passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
    writeFileSync(join(dir, "etc", "group"), "root:x:0:\nstaff:x:50:\n");
    expect(await resolveUser(dir, "app", step)).toEqual({ uid: 1000, gid: 1000 });
    expect(await resolveUser(dir, "app:staff", step)).toEqual({ uid: 1000, gid: 50 });
    await expect(resolveUser(dir, "nobody", step)).rejects.toThrow(/does not exist/);
  });

  it("refuses a FIFO instead of blocking on it", async () => {
    mkdirSync(join(dir, "etc"));
    execFileSync("mkfifo", [join(dir, "etc", "passwd")]);
    await expect(resolveUser(dir, "app", step)).rejects.toThrow(/not a regular file/);
  });

  it("refuses a huge (sparse) file", async () => {
    mkdirSync(join(dir, "etc"));
    writeFileSync(join(dir, "etc", "passwd"), "");
    truncateSync(join(dir, "etc", "passwd"), 2 * 1024 * 1024 * 1024);
    await expect(resolveUser(dir, "app", step)).rejects.toThrow(/larger than 1 MiB/);
  });

  it("refuses a symlink", async () => {
    mkdirSync(join(dir, "etc"));
    symlinkSync("/etc/passwd", join(dir, "etc", "passwd"));
    await expect(resolveUser(dir, "app", step)).rejects.toThrow(/symlink/);
  });
});
