import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_RESOURCES, TemplateNotFoundError, TemplateSettingsError, TemplateStore, type TemplateVersionManifest } from "./template-store.js";

const dirs: string[] = [];
const mounts: string[] = [];
afterEach(() => {
  for (const m of mounts.splice(0)) spawnSync("umount", ["-l", m]);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A process that is surely dead, and one that is surely alive and not us. */
const DEAD = 999_999_999;
const LIVE = process.ppid;
const mode = (path: string) => statSync(path).mode & 0o7777;

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
    await store.remove(["web:1"]);
    expect(store.hasLayer("kept")).toBe(false);
    expect(store.hasLayer("pinned")).toBe(false);
    expect(existsSync(join(root, "web"))).toBe(false);
  });

  it("cleans up what a dead daemon's build left, not a live one's", async () => {
    const { root, store } = storeWithLayers([]);
    store.writeVersion(version("web", 1, [], { status: "building", buildPid: 999_999_999 }));
    store.writeVersion(version("web", 2, [], { status: "building", buildPid: LIVE }));
    mkdirSync(join(root, ".layers", "k.building-999999999-x"), { recursive: true });
    mkdirSync(join(root, ".builds", "999999999-y"), { recursive: true });
    await store.cleanupStale();
    expect(store.versions("web").map((v) => v.version)).toEqual([2]);
    expect(existsSync(join(root, ".layers", "k.building-999999999-x"))).toBe(false);
    expect(existsSync(join(root, ".builds", "999999999-y"))).toBe(false);
  });

  it("removes exactly the versions named, after checking them all; never a built-in", async () => {
    const { root, store } = storeWithLayers(["a", "b"]);
    store.writeVersion(version("web", 1, ["a"]));
    store.writeVersion(version("web", 2, ["a", "b"]));
    store.writeVersion(version("web", 3, ["a"], { status: "building", buildPid: LIVE }));
    await expect(store.remove(["base:1"])).rejects.toThrow(TemplateSettingsError);
    await expect(store.remove(["web"])).rejects.toThrow(TemplateSettingsError);
    // One missing ref: nothing is removed.
    await expect(store.remove(["web:1", "web:9"])).rejects.toThrow(TemplateNotFoundError);
    // A version still building is not the caller's to delete.
    await expect(store.remove(["web:3"])).rejects.toThrow(TemplateNotFoundError);
    expect(store.versions("web").map((v) => v.version)).toEqual([3, 2, 1]);
    expect((await store.remove(["web:2"])).map((v) => v.version)).toEqual([2]);
    expect(store.versions("web").map((v) => v.version)).toEqual([3, 1]);
    expect(store.hasLayer("a")).toBe(true);
    expect(store.hasLayer("b")).toBe(false);
    // Deleted through the trash, which is emptied and never listed.
    expect(readdirSync(join(root, ".trash"))).toEqual([]);
    expect(store.names()).toEqual(["web"]);
  });

  it("removes a name's folder with its last version, and never reuses its numbers", async () => {
    const { root, store } = storeWithLayers(["a"]);
    store.writeVersion(version("web", 1, ["a"]));
    store.writeVersion(version("web", 2, ["a"]));
    await store.remove(["web:1", "web:2"]);
    expect(existsSync(join(root, "web"))).toBe(false);
    expect(store.list()).toEqual([]);
    expect(store.nextVersion("web")).toBe(3);
    // After a restart too, and for a claim.
    const again = new TemplateStore(root);
    expect(again.nextVersion("web")).toBe(3);
    expect(again.claimVersion("web")).toBe(3);
    expect(again.claimVersion("web")).toBe(4);
    expect(again.nextVersion("other")).toBe(1);
  });

  it("replaces a layer folder left incomplete (no layer.json), keeps a complete one", () => {
    const { root, store } = storeWithLayers(["done"]);
    mkdirSync(join(root, ".layers", "half", "diff"), { recursive: true });
    writeFileSync(join(root, ".layers", "half", "diff", "partial"), "x");
    expect(store.hasLayer("half")).toBe(false);
    const staging = store.stagingDir("half");
    writeFileSync(join(staging, "diff", "file"), "new");
    store.commitLayer("half", staging, { sizeBytes: 3, step: "RUN half" });
    expect(store.hasLayer("half")).toBe(true);
    expect(readFileSync(join(root, ".layers", "half", "diff", "file"), "utf8")).toBe("new");
    expect(existsSync(join(root, ".layers", "half", "diff", "partial"))).toBe(false);
    expect(existsSync(staging)).toBe(false);
    const second = store.stagingDir("done");
    writeFileSync(join(second, "diff", "file"), "other");
    store.commitLayer("done", second, { sizeBytes: 5, step: "RUN done" });
    expect(readFileSync(join(root, ".layers", "done", "diff", "file"), "utf8")).toBe("done");
    expect(existsSync(second)).toBe(false);
  });

  it("empties the trash of dead daemons (and of a previous daemon with our pid), not a live one's", async () => {
    const { root, store } = storeWithLayers([]);
    for (const e of [`${DEAD}-x-web-v1`, `${process.pid}-x-layer-k`, `${LIVE}-x-web-v2`]) mkdirSync(join(root, ".trash", e, "snapshot"), { recursive: true });
    await store.cleanupStale();
    expect(readdirSync(join(root, ".trash"))).toEqual([`${LIVE}-x-web-v2`]);
    expect(store.names()).toEqual([]);
  });

  it("treats our own pid as a previous daemon's at start: its builds and pins are stale", async () => {
    const { root, store } = storeWithLayers(["ours", "previous"]);
    store.writeVersion(version("web", 1, [], { status: "building", buildPid: process.pid }));
    mkdirSync(join(root, ".layers", `k.building-${process.pid}-x`), { recursive: true });
    writeFileSync(join(root, ".pins", `${process.pid}-old.json`), JSON.stringify(["previous"]));
    store.pin("now", ["ours"]);
    await store.cleanupStale();
    expect(store.versions("web")).toEqual([]);
    expect(store.nextVersion("web")).toBe(2);
    expect(existsSync(join(root, ".layers", `k.building-${process.pid}-x`))).toBe(false);
    await store.collectLayers();
    expect(store.hasLayer("ours")).toBe(true);
    expect(store.hasLayer("previous")).toBe(false);
    store.unpin("now");
  });

  it("removes what an interrupted shifted copy left, unmounting its view", async () => {
    const { root, store } = storeWithLayers([]);
    store.writeVersion(version("web", 1, []));
    const v1 = store.versionDir("web", 1);
    const left = [`rootfs-uid100000.view-${DEAD}`, `rootfs-uid100000.empty-${DEAD}`, `rootfs-uid100000.tmp-${DEAD}-1700000000000`];
    const kept = [`rootfs-uid100000.view-${LIVE}`, "rootfs-uid100000", "rootfs-uid100000.done"];
    for (const e of [...left, ...kept.slice(0, 2)]) mkdirSync(join(v1, e));
    writeFileSync(join(v1, "rootfs-uid100000.done"), "");
    mkdirSync(join(root, "base", `rootfs-uid100000.tmp-${DEAD}-1`), { recursive: true });
    // As root (the daemon), a view a crash left mounted is unmounted first.
    const view = join(v1, left[0]!);
    if (process.getuid?.() === 0 && spawnSync("mount", ["-t", "tmpfs", "tmpfs", view]).status === 0) mounts.push(view);
    await store.cleanupStale();
    expect(readdirSync(v1).sort()).toEqual(["template.json", ...kept].sort());
    expect(readdirSync(join(root, "base"))).toEqual([]);
    expect(readFileSync("/proc/self/mounts", "utf8")).not.toContain(view);
  });

  it("keeps local users out: root 0711, its folders 0700, built-in files untouched", () => {
    const root = mkdtempSync(join(tmpdir(), "stasis-tpl-"));
    dirs.push(root);
    chmodSync(root, 0o755);
    mkdirSync(join(root, "old", "v1"), { recursive: true, mode: 0o755 });
    mkdirSync(join(root, "base", "rootfs", "usr"), { recursive: true });
    writeFileSync(join(root, "base", "rootfs", "usr", "su"), "");
    chmodSync(join(root, "base", "rootfs", "usr", "su"), 0o4755);
    chmodSync(join(root, "old"), 0o755);
    const store = new TemplateStore(root);
    expect(mode(root)).toBe(0o711);
    for (const d of [".layers", ".trash", ".pins", ".versions", "old", "base"]) expect([d, mode(join(root, d))]).toEqual([d, 0o700]);
    expect(mode(join(root, "base", "rootfs", "usr", "su"))).toBe(0o4755);
    expect(mode(join(root, "base", "rootfs"))).not.toBe(0o700);
    // A name folder made by a build's claim with the umask's mode becomes private with its first manifest.
    mkdirSync(join(root, "fresh", "v1"), { recursive: true, mode: 0o755 });
    chmodSync(join(root, "fresh"), 0o755);
    store.writeVersion(version("fresh", 1, []));
    expect(mode(join(root, "fresh"))).toBe(0o700);
  });
});
