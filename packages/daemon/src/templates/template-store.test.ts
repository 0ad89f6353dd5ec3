import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_RESOURCES, TemplateStore, type TemplateVersionManifest } from "./template-store.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function storeWithLayers(keys: string[]): { root: string; store: TemplateStore } {
  const root = mkdtempSync(join(tmpdir(), "stasis-tpl-"));
  dirs.push(root);
  const store = new TemplateStore(root);
  for (const key of keys) {
    const staging = store.stagingDir(key);
    writeFileSync(join(staging, "diff", "file"), key);
    store.commitLayer(key, staging, { sizeBytes: 4, step: `RUN ${key}` });
  }
  return { root, store };
}

function version(name: string, v: number, layers: string[], extra: Partial<TemplateVersionManifest> = {}): TemplateVersionManifest {
  return { name, version: v, status: "ready", source: "spec", from: "base", builtAt: new Date().toISOString(), buildMs: 1, layers, sizeBytes: 4, buildKey: `k${v}`, env: {}, workdir: null, user: null, start: null, ready: null, readyTimeoutMs: null, resources: DEFAULT_RESOURCES, pool: 0, snapshot: null, ...extra };
}

describe("template store", () => {
  it("resolves names to the latest ready version and refs to exact ones; building versions only by ref", () => {
    const { store } = storeWithLayers(["a", "b"]);
    store.writeVersion(version("web", 1, ["a"]));
    store.writeVersion(version("web", 2, ["a", "b"], { workdir: "/app" }));
    store.writeVersion(version("web", 3, ["a", "b"], { status: "building", buildPid: process.pid }));
    expect(store.resolve("web")).toMatchObject({ ref: "web:2", workdir: "/app", builtin: false });
    expect(store.resolve("web:1").ref).toBe("web:1");
    expect(() => store.resolve("web:3")).toThrow(/no version 3/);
    expect(store.resolve("web:3", { allowBuilding: true }).ref).toBe("web:3");
    expect(store.lowerdir("web:2").split(":").map((p) => p.split("/").at(-2))).toEqual(["b", "a"]);
    expect(store.list().map((t) => [t.ref, t.latest])).toEqual([
      ["web:2", true],
      ["web:1", false],
    ]);
    expect(store.nextVersion("web")).toBe(4);
    expect(() => store.resolve("nosuch")).toThrow(/no template 'nosuch'/);
  });

  it("collects only layers that no version lists and no live build pins", async () => {
    const { root, store } = storeWithLayers(["kept", "pinned", "deadpin", "orphan"]);
    store.writeVersion(version("web", 1, ["kept"]));
    store.pin("b1", ["pinned"]);
    // A pin left by a daemon that died is ignored (and removed).
    mkdirSync(join(root, ".pins"), { recursive: true });
    writeFileSync(join(root, ".pins", "999999999-x.json"), JSON.stringify(["deadpin"]));
    await store.collectLayers();
    expect(["kept", "pinned", "deadpin", "orphan"].filter((k) => store.hasLayer(k))).toEqual(["kept", "pinned"]);
    expect(existsSync(join(root, ".pins", "999999999-x.json"))).toBe(false);
    store.unpin("b1");
    await store.remove("web");
    expect(store.hasLayer("kept")).toBe(false);
    expect(store.hasLayer("pinned")).toBe(false);
    expect(existsSync(join(root, "web"))).toBe(false);
  });

  it("cleans up what a dead daemon's build left, not a live one's", async () => {
    const { root, store } = storeWithLayers([]);
    store.writeVersion(version("web", 1, [], { status: "building", buildPid: 999_999_999 }));
    store.writeVersion(version("web", 2, [], { status: "building", buildPid: process.pid }));
    mkdirSync(join(root, ".layers", "k.building-999999999-x"), { recursive: true });
    mkdirSync(join(root, ".builds", "999999999-y"), { recursive: true });
    await store.cleanupStale();
    expect(store.versions("web").map((v) => v.version)).toEqual([2]);
    expect(existsSync(join(root, ".layers", "k.building-999999999-x"))).toBe(false);
    expect(existsSync(join(root, ".builds", "999999999-y"))).toBe(false);
  });
});
