import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ContainerIds } from "./container-ids.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "stasis-container-ids-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("ContainerIds", () => {
  it("runs a booted sandbox under its own id and each restore under a fresh one", () => {
    const ids = new ContainerIds({ id: "sbx_a", dir });
    expect(ids.current()).toBe("sbx_a");
    ids.reset();
    expect(ids.current()).toBe("sbx_a");
    expect(ids.startIncarnation()).toBe("sbx_a-1");
    expect(ids.startIncarnation()).toBe("sbx_a-2");
    expect(ids.current()).toBe("sbx_a-2");
    expect(ids.all()).toEqual(["sbx_a-2", "sbx_a", "sbx_a-1"]);
    ids.forgotten("sbx_a");
    ids.forgotten("sbx_a-1");
    expect(ids.all()).toEqual(["sbx_a-2"]);
    // A new boot starts over under the sandbox's own id.
    ids.reset();
    expect(ids.all()).toEqual(["sbx_a"]);
  });

  it("counts a sandbox from before incarnations (no file) as running under its own id", () => {
    const ids = new ContainerIds({ id: "sbx_old", dir });
    expect(ids.startIncarnation()).toBe("sbx_old-1");
    expect(ids.all()).toEqual(["sbx_old-1", "sbx_old"]);
  });

  it("never trusts what the file says beyond well-formed ids", () => {
    writeFileSync(join(dir, "containers.json"), JSON.stringify({ current: "../../etc", stale: ["ok-1", "bad id", 7], next: "x" }));
    const ids = new ContainerIds({ id: "sbx_b", dir });
    expect(ids.current()).toBe("sbx_b");
    expect(ids.all()).toEqual(["sbx_b", "ok-1"]);
    writeFileSync(join(dir, "containers.json"), "{not json");
    expect(ids.all()).toEqual(["sbx_b"]);
  });
});
