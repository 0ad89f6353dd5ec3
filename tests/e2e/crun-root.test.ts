import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestDaemon, TEMPLATES_DIR, type TestDaemon } from "./harness.js";

/** Host uid of root in a crun sandbox (the daemon's default STASIS_USERNS_BASE). */
const USERNS_BASE = 1_000_000;

// A templates folder of its own, holding a small `base` (its manifest, a few files): the real one's copy
// is made once per host and must not be removed under other daemons' sandboxes.
describe("a daemon with crun available", () => {
  let daemon: TestDaemon;
  let templates: string;
  beforeAll(async () => {
    templates = mkdtempSync(join(tmpdir(), "stasis-templates-"));
    mkdirSync(join(templates, "base/rootfs/etc"), { recursive: true });
    cpSync(join(TEMPLATES_DIR, "base/template.json"), join(templates, "base/template.json"));
    writeFileSync(join(templates, "base/rootfs/etc/hostname"), "small\n");
    daemon = await startTestDaemon({ STASIS_TEMPLATES_DIR: templates });
  });
  afterAll(async () => {
    await daemon?.destroy();
    rmSync(templates, { recursive: true, force: true });
  });

  it("makes the default template's root with shifted owners at its start, before any crun create", async () => {
    const shifted = join(templates, `base/rootfs-uid${USERNS_BASE}`);
    await expect.poll(() => existsSync(`${shifted}.done`), { timeout: 30_000 }).toBe(true);
    for (const path of [shifted, join(shifted, "etc/hostname")]) expect(lstatSync(path).uid).toBe(USERNS_BASE);
    expect(existsSync(`${shifted}.lock`)).toBe(false);
    expect(daemon.logs.some((line) => line.includes("with owners shifted by") && line.includes('"runtime":"crun"'))).toBe(true);
  });
});
