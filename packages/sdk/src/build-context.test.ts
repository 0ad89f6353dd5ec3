import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { collectContext, IgnoreRules, packEntries } from "./build-context.js";
import { PayloadTooLargeError } from "./errors.js";
import { readAll, tarEntries } from "./test-support/tar.js";

const rules = (text: string) => IgnoreRules.parse(text);
const excluded = (text: string, paths: string[]) => paths.filter((p) => rules(text).excludes(p));

describe("IgnoreRules", () => {
  it("anchors patterns at the context root, as Docker does", () => {
    expect(excluded("*.log", ["a.log", "dir/a.log", "a.log.txt"])).toEqual(["a.log"]);
    expect(excluded("dir/*.log", ["dir/a.log", "dir/sub/a.log", "a.log"])).toEqual(["dir/a.log"]);
  });

  it("lets ** span any number of directories, none included", () => {
    const paths = ["a.pyc", "x/a.pyc", "x/y/z/a.pyc", "a.py"];
    expect(excluded("**/*.pyc", paths)).toEqual(["a.pyc", "x/a.pyc", "x/y/z/a.pyc"]);
    expect(excluded("x/**/a.pyc", paths)).toEqual(["x/a.pyc", "x/y/z/a.pyc"]);
    expect(excluded("x/**", ["x", "x/a", "x/y/z", "xy"])).toEqual(["x/a", "x/y/z"]);
    expect(excluded("**", ["a", "b/c"])).toEqual(["a", "b/c"]);
  });

  it("keeps * and ? within one segment", () => {
    expect(excluded("a*", ["abc", "ab/c", "x/abc"])).toEqual(["abc", "ab/c"]);
    expect(excluded("?.txt", ["a.txt", "ab.txt", "/.txt"])).toEqual(["a.txt"]);
    expect(excluded("[ab].txt", ["a.txt", "c.txt"])).toEqual(["a.txt"]);
    expect(excluded("[!ab].txt", ["a.txt", "c.txt"])).toEqual(["c.txt"]);
  });

  it("covers everything below a matched directory", () => {
    expect(excluded("node_modules", ["node_modules", "node_modules/x/index.js", "src/node_modules"])).toEqual(["node_modules", "node_modules/x/index.js"]);
  });

  it("ignores a leading or trailing slash, comments and blank lines", () => {
    const text = "# build output\n\n/dist/\n  build/  \n";
    expect(excluded(text, ["dist", "dist/a.js", "src/dist", "build", "build/x", "# build output"])).toEqual(["dist", "dist/a.js", "build", "build/x"]);
  });

  it("lets the last matching rule win, with ! re-including", () => {
    const text = "*.md\n!README.md\ndocs\n!docs/keep.md";
    expect(excluded(text, ["a.md", "README.md", "docs/a.md", "docs/keep.md", "docs"])).toEqual(["a.md", "docs/a.md", "docs"]);
    expect(excluded("*\n!src\nsrc/*.tmp", ["a", "src", "src/a.ts", "src/a.tmp"])).toEqual(["a", "src/a.tmp"]);
    expect(rules("*\n!src").hasNegations).toBe(true);
    expect(rules("*").hasNegations).toBe(false);
  });

  it("treats regex characters and escapes literally", () => {
    expect(excluded("a+b.(x)", ["a+b.(x)", "aab.(x)"])).toEqual(["a+b.(x)"]);
    expect(excluded("\\*.txt", ["*.txt", "a.txt"])).toEqual(["*.txt"]);
  });

  it("normalises patterns the way Docker cleans them", () => {
    expect(excluded("./a/../b", ["b", "a"])).toEqual(["b"]);
    expect(excluded("/\n.", ["a"])).toEqual([]);
    expect(excluded("\uFEFFa", ["a"])).toEqual(["a"]);
  });
});

describe("collectContext and packEntries", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function tree(files: Record<string, string>): string {
    dir = mkdtempSync(join(tmpdir(), "stasis-ctx-"));
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
    return dir;
  }

  it("lists what the ignore file leaves, directories before their contents", async () => {
    tree({
      Dockerfile: "FROM base\n",
      ".dockerignore": "node_modules\n**/*.log\nDockerfile\n.dockerignore\n",
      "app/main.py": "print(1)\n",
      "app/debug.log": "x",
      "node_modules/x/index.js": "",
      "@scoped": "not an archive",
    });
    const context = await collectContext(dir, { keep: ["Dockerfile"] });
    // The build file goes along even when ignored; the ignore file itself need not.
    expect(context.entries).toEqual(["@scoped", "Dockerfile", "app", "app/main.py"]);
    expect(context.ignoreFile).toBe(".dockerignore");
    // End blocks, then a header per entry and each file's content in 512-byte blocks.
    expect(context.bytes).toBe(1024 + 4 * 512 + 3 * 512);
  });

  it("prefers .stasisignore over .dockerignore", async () => {
    tree({ ".dockerignore": "a\n", ".stasisignore": "b\n", a: "", b: "" });
    const context = await collectContext(dir);
    expect(context.ignoreFile).toBe(".stasisignore");
    expect(context.entries).toEqual([".dockerignore", ".stasisignore", "a"]);
    expect((await collectContext(dir, { ignore: false })).entries).toEqual([".dockerignore", ".stasisignore", "a", "b"]);
  });

  it("searches an excluded directory only for what a ! rule brings back", async () => {
    tree({ ".dockerignore": "docs\n!docs/keep/a.md\n", "docs/x.md": "", "docs/keep/a.md": "", "docs/other/b.md": "" });
    expect((await collectContext(dir)).entries).toEqual([".dockerignore", "docs", "docs/keep", "docs/keep/a.md"]);
  });

  it("keeps a build file inside an ignored directory, with its directory", async () => {
    tree({ ".dockerignore": "build\n", "build/Dockerfile.dev": "FROM x", "build/other": "" });
    expect((await collectContext(dir, { keep: ["build/Dockerfile.dev"] })).entries).toEqual([".dockerignore", "build", "build/Dockerfile.dev"]);
  });

  it("packs symlinks as links, never following them out of the context", async () => {
    tree({ "a.txt": "hello", "sub/b.txt": "bee" });
    symlinkSync("/etc/passwd", join(dir, "passwd"));
    symlinkSync("sub", join(dir, "linkdir"));
    const { entries } = await collectContext(dir);
    expect(entries).toEqual(["a.txt", "linkdir", "passwd", "sub", "sub/b.txt"]);
    const archive = await tarEntries(await readAll(packEntries(dir, entries)));
    expect(archive.map(({ path, type, linkpath, content }) => ({ path, type, linkpath, content }))).toEqual([
      { path: "a.txt", type: "File", linkpath: undefined, content: "hello" },
      { path: "linkdir", type: "SymbolicLink", linkpath: "sub", content: "" },
      { path: "passwd", type: "SymbolicLink", linkpath: "/etc/passwd", content: "" },
      { path: "sub/", type: "Directory", linkpath: undefined, content: "" },
      { path: "sub/b.txt", type: "File", linkpath: undefined, content: "bee" },
    ]);
  });

  it("packs a file named @x as a file", async () => {
    tree({ "@x": "at" });
    const archive = await tarEntries(await readAll(packEntries(dir, ["@x"])));
    expect(archive.map((e) => [e.path, e.content])).toEqual([["@x", "at"]]);
  });

  it("fails the stream when the packed bytes pass the limit", async () => {
    tree({ big: "x".repeat(4096) });
    let reported: Error | undefined;
    const stream = packEntries(dir, ["big"], { limit: 2048, onError: (err) => (reported = err) });
    await expect(readAll(stream)).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(reported?.message).toMatch(/grew past 2 KiB/);
  });

  it("fails the stream when a listed file has gone, also while no read is pending", async () => {
    const names = Array.from({ length: 8 }, (_, i) => `f${i}`);
    tree(Object.fromEntries(names.map((n) => [n, "x".repeat(1 << 20)])));
    let reported: Error | undefined;
    const reader = packEntries(dir, [...names, "gone"], { onError: (err) => (reported = err) }).getReader();
    await reader.read();
    // The packer hits the missing file while nobody reads: it must keep the error for the next read, not crash.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const rest = async () => {
      while (!(await reader.read()).done);
    };
    await expect(rest()).rejects.toThrow(/ENOENT/);
    expect(reported).toBeDefined();
  });
});
