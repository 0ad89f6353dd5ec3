import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isPlainTar } from "./template-service.js";

describe("build context archives", () => {
  const dir = mkdtempSync(join(tmpdir(), "stasis-tar-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "Dockerfile"), "FROM base\n");

  it("takes tar's own formats and an empty archive, and refuses compressed ones", () => {
    for (const format of ["gnu", "ustar", "posix"]) {
      const tar = join(dir, `${format}.tar`);
      execFileSync("tar", ["-C", dir, `--format=${format}`, "-cf", tar, "Dockerfile"]);
      expect(isPlainTar(tar), format).toBe(true);
    }
    const empty = join(dir, "empty.tar");
    writeFileSync(empty, Buffer.alloc(10240));
    expect(isPlainTar(empty)).toBe(true);
    const gz = join(dir, "context.tar.gz");
    execFileSync("tar", ["-C", dir, "-czf", gz, "Dockerfile"]);
    expect(isPlainTar(gz)).toBe(false);
    const short = join(dir, "short");
    writeFileSync(short, "not a tar");
    expect(isPlainTar(short)).toBe(false);
  });
});
