import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importOciImage, OciImportError, type OciImageConfig } from "./oci-import.js";

// Real umoci/skopeo runs: they need root to keep ownership (CI runs `sudo npm test`; set-up installs the tools).
describe.skipIf(process.getuid?.() !== 0)("importOciImage", () => {
  let root: string;
  let workDir: string;
  let n = 0;
  const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { cwd: root, stdio: "pipe", encoding: "utf8" });
  const dest = () => join(root, "out", `rootfs-${++n}`);
  const lines: string[] = [];
  const opts = (image?: string) => ({ workDir, image, progress: (l: string) => lines.push(l) });

  /** Adds an image `tag` to the OCI layout `layout`, its rootfs filled by `fill`, its config set by umoci config flags. */
  function makeImage(layout: string, tag: string, fill: (rootfs: string) => void, config: string[]) {
    if (!readdirSync(root).includes(layout)) sh("umoci", "init", "--layout", layout);
    sh("umoci", "new", "--image", `${layout}:${tag}`);
    const bundle = join(root, `bundle-${layout}-${tag}`);
    sh("umoci", "unpack", "--image", `${layout}:${tag}`, bundle);
    fill(join(bundle, "rootfs"));
    sh("umoci", "repack", "--image", `${layout}:${tag}`, bundle);
    sh("umoci", "config", "--image", `${layout}:${tag}`, ...config);
    rmSync(bundle, { recursive: true, force: true });
  }

  const fillApp = (r: string) => {
    mkdirSync(join(r, "app", "data"), { recursive: true });
    mkdirSync(join(r, "etc"));
    writeFileSync(join(r, "app", "hello.txt"), "hello\n");
    chownSync(join(r, "app", "hello.txt"), 1000, 1000);
    symlinkSync("hello.txt", join(r, "app", "link"));
  };
  const appConfig = [
    "--config.env=A=1",
    "--config.env=B=x=y",
    "--config.workingdir=/app",
    "--config.user=1000",
    "--config.entrypoint=python3",
    "--config.cmd=-m",
    "--config.cmd=http server",
  ];
  const fillOther = (r: string) => {
    mkdirSync(join(r, "etc"));
    writeFileSync(join(r, "other.txt"), "other\n");
    writeFileSync(join(r, "etc", "hosts"), "custom hosts\n");
  };
  const otherConfig = ["--config.env=OTHER=yes", "--config.cmd=/bin/sh"];

  // Host paths the hostile image's symlinks point at.
  let hostTmp: string;
  let hostEtc: string;
  let hostStasis: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "stasis-oci-import-test-"));
    workDir = join(root, "work");
    mkdirSync(workDir);
    makeImage("lone", "latest", fillApp, appConfig);
    makeImage("multi", "latest", fillApp, appConfig);
    makeImage("multi", "other", fillOther, otherConfig);

    hostTmp = join(root, "host-tmp");
    hostEtc = join(root, "host-etc");
    hostStasis = join(root, "host-stasis");
    for (const d of [hostTmp, hostEtc, hostStasis]) {
      mkdirSync(d);
      chmodSync(d, 0o700);
    }
    writeFileSync(join(hostEtc, "hosts"), "host's own\n");
    makeImage(
      "evil",
      "latest",
      (r) => {
        symlinkSync(hostTmp, join(r, "tmp"));
        symlinkSync(hostEtc, join(r, "etc"));
        symlinkSync(hostStasis, join(r, ".stasis"));
      },
      [],
    );

    sh("tar", "-C", join(root, "lone"), "-cf", "lone.tar", ".");
    sh("tar", "-C", root, "-cf", "lone-nested.tar", "lone");
    sh("gzip", "-k", "lone.tar");
    sh("tar", "-C", join(root, "multi"), "-cf", "multi.tar", ".");
    sh("skopeo", "copy", "--insecure-policy", "oci:lone:latest", `docker-archive:${join(root, "myimg.tar")}:myimg:1.0`);
    sh("skopeo", "copy", "--insecure-policy", "oci:multi:other", `docker-archive:${join(root, "other.tar")}:other:2.0`);
    sh("gzip", "-k", "myimg.tar");
    // docker save of two images: both archives' files, one manifest.json listing both.
    const both = join(root, "both");
    mkdirSync(both);
    sh("tar", "-C", both, "-xf", "myimg.tar");
    const first: unknown[] = JSON.parse(readFileSync(join(both, "manifest.json"), "utf8"));
    sh("tar", "-C", both, "-xf", "other.tar");
    const second: unknown[] = JSON.parse(readFileSync(join(both, "manifest.json"), "utf8"));
    writeFileSync(join(both, "manifest.json"), JSON.stringify([...first, ...second]));
    rmSync(join(both, "repositories"));
    sh("tar", "-C", both, "-cf", "both.tar", ".");
    makeContainerdStyle();
  }, 120_000);

  /**
   * What docker save with the containerd image store writes: an OCI layout whose tag points at a multi-platform index of
   * Docker-typed manifests, only the host's present, next to a manifest.json.
   */
  function makeContainerdStyle() {
    const layout = join(root, "containerd");
    sh("cp", "-a", join(root, "lone"), layout);
    const blob = (digest: string) => join(layout, "blobs", "sha256", digest.slice("sha256:".length));
    const put = (value: unknown) => {
      const data = JSON.stringify(value);
      const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
      writeFileSync(blob(digest), data);
      return { digest, size: Buffer.byteLength(data) };
    };
    const missing = (seed: string) => ({ digest: `sha256:${createHash("sha256").update(seed).digest("hex")}`, size: 100 });
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest), "utf8"));
    const dockerManifest = put({
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { ...manifest.config, mediaType: "application/vnd.docker.container.image.v1+json" },
      layers: manifest.layers.map((l: object) => ({ ...l, mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip" })),
    });
    const arch = process.arch === "x64" ? "amd64" : process.arch;
    const type = "application/vnd.docker.distribution.manifest.v2+json";
    const list = put({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { mediaType: type, ...missing("a"), platform: { os: "linux", architecture: arch } },
        { mediaType: type, ...missing("b"), platform: { os: "linux", architecture: arch === "amd64" ? "arm64" : "amd64" } },
        { mediaType: type, ...dockerManifest, platform: { os: "linux", architecture: arch } },
        { mediaType: "application/vnd.oci.image.manifest.v1+json", ...missing("c"), platform: { os: "unknown", architecture: "unknown" } },
      ],
    });
    const annotations = { "org.opencontainers.image.ref.name": "1", "io.containerd.image.name": "docker.io/library/multiarch:1" };
    writeFileSync(
      join(layout, "index.json"),
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.index.v1+json", ...list, annotations }] }),
    );
    // Not read: the OCI layout wins over the docker-compatible manifest.json.
    writeFileSync(join(layout, "manifest.json"), "[]");
    sh("tar", "-C", layout, "-cf", "containerd.tar", ".");
  }

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  function expectApp(rootfs: string, config: OciImageConfig) {
    expect(readFileSync(join(rootfs, "app", "hello.txt"), "utf8")).toBe("hello\n");
    const hello = lstatSync(join(rootfs, "app", "hello.txt"));
    expect([hello.uid, hello.gid]).toEqual([1000, 1000]);
    expect(lstatSync(join(rootfs, "app", "link")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(rootfs, "app", "link"))).toBe("hello.txt");
    expect(lstatSync(join(rootfs, "app", "data")).isDirectory()).toBe(true);
    expect(config).toEqual({ env: { A: "1", B: "x=y" }, workdir: "/app", user: "1000", start: "python3 -m 'http server'" });
    expectTemplateReady(rootfs, "127.0.0.1 localhost sandbox\n::1 localhost\n");
  }

  function expectTemplateReady(rootfs: string, hosts: string) {
    const tmp = lstatSync(join(rootfs, "tmp"));
    expect(tmp.isDirectory()).toBe(true);
    expect(tmp.mode & 0o7777).toBe(0o1777);
    expect(lstatSync(join(rootfs, "etc")).isDirectory()).toBe(true);
    expect(lstatSync(join(rootfs, "etc", "hosts")).isFile()).toBe(true);
    expect(readFileSync(join(rootfs, "etc", "hosts"), "utf8")).toBe(hosts);
    expect(lstatSync(join(rootfs, ".stasis")).isDirectory()).toBe(true);
    const agent = lstatSync(join(rootfs, ".stasis", "agent"));
    expect(agent.isFile() && agent.size === 0).toBe(true);
    // The scratch directory is left as it was found.
    expect(readdirSync(workDir)).toEqual([]);
  }

  it("imports an OCI layout directory", async () => {
    lines.length = 0;
    const out = dest();
    expectApp(out, await importOciImage(join(root, "lone"), out, opts()));
    expect(lines.length).toBeGreaterThan(0);
  });

  it("imports a tar of an OCI layout, at the top or in one directory, or gzipped", async () => {
    for (const archive of ["lone.tar", "lone-nested.tar", "lone.tar.gz"]) {
      const out = dest();
      expectApp(out, await importOciImage(join(root, archive), out, opts()));
    }
  });

  it("imports a docker save tarball, also gzipped", async () => {
    const out = dest();
    expectApp(out, await importOciImage(join(root, "myimg.tar"), out, opts()));
    const named = dest();
    expectApp(named, await importOciImage(join(root, "myimg.tar"), named, opts("myimg:1.0")));
    const gzipped = dest();
    expectApp(gzipped, await importOciImage(join(root, "myimg.tar.gz"), gzipped, opts()));
  });

  it("asks which image when there are several, and imports the one named", async () => {
    for (const archive of ["multi.tar", "multi"]) {
      const err = await importOciImage(join(root, archive), dest(), opts()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OciImportError);
      expect((err as Error).message).toMatch(/latest/);
      expect((err as Error).message).toMatch(/other/);
    }
    const other = dest();
    const config = await importOciImage(join(root, "multi.tar"), other, opts("other"));
    expect(config).toEqual({ env: { OTHER: "yes" }, workdir: null, user: null, start: "/bin/sh" });
    expect(readFileSync(join(other, "other.txt"), "utf8")).toBe("other\n");
    expect(readdirSync(other)).not.toContain("app");
    expectTemplateReady(other, "custom hosts\n");
    const latest = dest();
    expectApp(latest, await importOciImage(join(root, "multi"), latest, opts("latest")));

    const err = await importOciImage(join(root, "both.tar"), dest(), opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OciImportError);
    expect((err as Error).message).toMatch(/myimg:1\.0/);
    expect((err as Error).message).toMatch(/other:2\.0/);
    const fromBoth = dest();
    expect((await importOciImage(join(root, "both.tar"), fromBoth, opts("other:2.0"))).start).toBe("/bin/sh");
    expect(readFileSync(join(fromBoth, "other.txt"), "utf8")).toBe("other\n");
    const fullName = dest();
    expectApp(fullName, await importOciImage(join(root, "both.tar"), fullName, opts("docker.io/library/myimg:1.0")));
    await expect(importOciImage(join(root, "both.tar"), dest(), opts("nope:1"))).rejects.toThrow(/no image "nope:1".*myimg:1\.0/);
  });

  it("imports a multi-platform index of Docker manifests, as docker save with containerd writes it", async () => {
    for (const image of [undefined, "multiarch:1", "docker.io/library/multiarch:1", "1"]) {
      const out = dest();
      expectApp(out, await importOciImage(join(root, "containerd.tar"), out, opts(image)));
    }
  });

  it("rejects what is not an image archive", async () => {
    writeFileSync(join(root, "garbage.tar"), Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 7919 + 13) % 251)));
    mkdirSync(join(root, "empty-dir"));
    // A blob that is a symlink out of the archive, even to content with the right digest.
    sh("cp", "-a", join(root, "lone"), join(root, "linked"));
    const blobs = join(root, "linked", "blobs", "sha256");
    for (const name of readdirSync(blobs)) {
      sh("mv", join(blobs, name), join(root, `host-blob-${name}`));
      symlinkSync(join(root, `host-blob-${name}`), join(blobs, name));
    }
    sh("tar", "-C", join(root, "linked"), "-cf", "linked.tar", ".");
    await expect(importOciImage(join(root, "linked.tar"), dest(), opts())).rejects.toThrow(/not a regular file|symlink/);
    for (const archive of ["garbage.tar", "empty-dir", "no-such-file", "linked.tar"]) {
      const out = dest();
      await expect(importOciImage(join(root, archive), out, opts())).rejects.toBeInstanceOf(OciImportError);
      expect(() => lstatSync(out)).toThrow();
    }
    expect(readdirSync(workDir)).toEqual([]);
  });

  it("replaces symlinks to host paths instead of writing through them", async () => {
    const out = dest();
    await importOciImage(join(root, "evil"), out, opts());
    for (const d of [hostTmp, hostEtc, hostStasis]) expect(lstatSync(d).mode & 0o7777).toBe(0o700);
    expect(readdirSync(hostTmp)).toEqual([]);
    expect(readdirSync(hostStasis)).toEqual([]);
    expect(readdirSync(hostEtc)).toEqual(["hosts"]);
    expect(readFileSync(join(hostEtc, "hosts"), "utf8")).toBe("host's own\n");
    expectTemplateReady(out, "127.0.0.1 localhost sandbox\n::1 localhost\n");
  });

  it("refuses an existing destination and honours an aborted signal", async () => {
    const out = dest();
    mkdirSync(out, { recursive: true });
    await expect(importOciImage(join(root, "lone"), out, opts())).rejects.toThrow(/already exists/);
    const controller = new AbortController();
    controller.abort();
    await expect(importOciImage(join(root, "lone"), dest(), { ...opts(), signal: controller.signal })).rejects.toThrow();
    // Aborted while skopeo runs: the tool is killed and nothing is left behind.
    const late = new AbortController();
    const target = dest();
    const running = importOciImage(join(root, "myimg.tar"), target, {
      ...opts(),
      signal: late.signal,
      progress: (l) => {
        if (/Getting image source signatures/.test(l)) late.abort(new Error("stop now"));
      },
    });
    await expect(running).rejects.toThrow("stop now");
    expect(() => lstatSync(target)).toThrow();
    expect(readdirSync(workDir)).toEqual([]);
  });
});
