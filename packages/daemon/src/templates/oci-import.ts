import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { lstat, mkdir, mkdtemp, open, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { BoundedReadError, readBoundedFile } from "./bounded-read.js";
import { LineSplitter } from "../runtime/line-splitter.js";

export interface OciImageConfig {
  env: Record<string, string>;
  workdir: string | null;
  user: string | null;
  start: string | null;
}

/** A problem with the archive the user gave (bad format, image not found, several images to choose from, ...). */
export class OciImportError extends Error {}

const MAX_JSON_BYTES = 4 * 1024 * 1024;
const TOOL_TIMEOUT_MS = 60 * 60_000;
const STDERR_TAIL_BYTES = 4096;
/** The single tag of the layout umoci unpacks from (see buildView). */
const VIEW_TAG = "import";

const MT = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};
const REF_NAME = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME = "io.containerd.image.name";

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string };
}

/** One image an archive offers: the names it can be picked by, and where it is. */
interface Candidate {
  names: string[];
  /** What lists it to the user. */
  label: string;
  /** Same key = same image (several tags of one image are not a choice). */
  key: string;
  descriptor?: Descriptor;
  /** Position in a docker-save manifest.json. */
  position?: number;
}

interface ImportOptions {
  image?: string;
  workDir: string;
  progress: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * Unpacks an image from `archive` (a `docker save` tarball, or a tar of an OCI image layout directory, or an OCI layout directory itself)
 * into `destRootfs` (must not exist yet; created) and returns its config. `image` picks one image when the archive holds several
 * (a tag like "latest" or a "name:tag" / repo tag as docker save records it); without it, the only image, else OciImportError listing them.
 * `workDir` is a scratch directory the function may use (it removes what it creates there).
 */
export async function importOciImage(archive: string, destRootfs: string, options: ImportOptions): Promise<OciImageConfig> {
  const { progress, signal } = options;
  signal?.throwIfAborted();
  archive = resolve(archive);
  destRootfs = resolve(destRootfs);
  if (await lstatOrNull(destRootfs)) throw new Error(`${destRootfs} already exists`);
  const archiveStat = await stat(archive).catch(() => null);
  if (!archiveStat) throw new OciImportError(`${archive} does not exist`);
  if (!archiveStat.isFile() && !archiveStat.isDirectory()) throw new OciImportError(`${archive} is not a file or directory`);

  await mkdir(options.workDir, { recursive: true });
  // Tools get paths relative to this directory: skopeo's and umoci's image references split on ':'.
  const tmp = await mkdtemp(join(resolve(options.workDir), "oci-import-"));
  const run = (cmd: string, args: string[], extra: Omit<ToolOptions, "cwd" | "signal" | "progress"> = {}) =>
    runTool(cmd, args, { cwd: tmp, signal, progress, ...extra });
  let destCreated = false;
  try {
    let layout: string;
    // Blobs of a layout we extracted from an untrusted tar must be plain files, never symlinks out of it.
    let strict = false;
    let dockerArchive: { manifestMember: string } | null = null;
    if (archiveStat.isDirectory()) {
      if (!(await lstatOrNull(join(archive, "oci-layout")))) {
        throw new OciImportError(`${archive} is a directory but not an OCI image layout (no oci-layout file)`);
      }
      layout = archive;
    } else {
      const members = await listTarRoots(archive, run);
      if (members.ociLayout !== null) {
        progress(`extracting OCI image layout from ${archive}`);
        await mkdir(join(tmp, "extracted"));
        await run("tar", ["-x", "--no-same-owner", "--force-local", "-f", archive, "-C", "extracted"]);
        layout = join(tmp, "extracted", members.ociLayout);
        strict = true;
        if (!(await lstatOrNull(layout))?.isDirectory()) throw new OciImportError(`${members.ociLayout} in the archive is not a directory`);
        if (!(await lstatOrNull(join(layout, "oci-layout")))?.isFile()) throw new OciImportError("the archive's oci-layout is not a regular file");
      } else if (members.manifestJson !== null) {
        dockerArchive = { manifestMember: members.manifestJson };
        layout = join(tmp, "layout");
      } else {
        throw new OciImportError(`${archive} is neither an OCI image layout tar nor a docker save tarball (it has no oci-layout or manifest.json)`);
      }
    }

    let descriptor: Descriptor;
    let chosenLabel: string;
    if (dockerArchive) {
      const manifest = await readTarMember(archive, dockerArchive.manifestMember, run);
      const chosen = pickImage(dockerSaveCandidates(manifest), options.image);
      chosenLabel = chosen.label;
      progress(`converting ${chosen.label} from the docker save tarball`);
      const decompressor = await compressionOf(archive);
      if (decompressor) {
        // skopeo 1.9 cannot read a compressed docker-archive.
        progress(`decompressing ${archive}`);
        const out = await open(join(tmp, "archive.tar"), "wx");
        try {
          await run(decompressor, ["-dc", "--", archive], { stdoutFd: out.fd });
        } finally {
          await out.close();
        }
      } else {
        await symlink(archive, join(tmp, "archive.tar"));
      }
      // Local file to local layout: there are no signatures, so the host's trust policy does not apply.
      await run("skopeo", ["copy", "--insecure-policy", `docker-archive:archive.tar:@${chosen.position ?? 0}`, `oci:layout:${VIEW_TAG}`], {
        env: { ...process.env, TMPDIR: tmp },
      });
      const index = await readIndex(layout, false);
      const entry = index.manifests.find((d) => d.annotations?.[REF_NAME] === VIEW_TAG);
      if (!entry) throw new Error(`skopeo wrote no "${VIEW_TAG}" image`);
      descriptor = entry;
    } else {
      const index = await readIndex(layout, strict);
      const chosen = pickImage(ociCandidates(index), options.image);
      chosenLabel = chosen.label;
      descriptor = chosen.descriptor!;
    }

    signal?.throwIfAborted();
    const blobs = new BlobReader(layout, strict);
    const manifest = await resolveManifest(blobs, descriptor, 0);
    const configBytes = await blobs.read(manifest.config, "image config");
    const imageConfig = parseJson(configBytes, "image config");
    const arch = isRecord(imageConfig) && typeof imageConfig.architecture === "string" ? imageConfig.architecture : null;
    if (arch && arch !== hostArch()) progress(`warning: ${chosenLabel} is built for ${arch}, this host is ${hostArch()}`);

    await buildView(join(tmp, "view"), blobs, manifest);
    const layerCount = manifest.layers.length;
    progress(`unpacking ${chosenLabel} (${layerCount} layer${layerCount === 1 ? "" : "s"})`);
    // umoci restores ownership only as root; elsewhere (development) it must run rootless.
    const rootless = process.getuid?.() === 0 ? [] : ["--rootless"];
    await run("umoci", ["--log", "info", "unpack", ...rootless, "--image", `view:${VIEW_TAG}`, "bundle"]);

    signal?.throwIfAborted();
    await mkdir(dirname(destRootfs), { recursive: true });
    try {
      await rename(join(tmp, "bundle", "rootfs"), destRootfs);
      destCreated = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
      destCreated = true;
      progress(`copying the root filesystem to ${destRootfs}`);
      await run("cp", ["-a", "-T", "--", join(tmp, "bundle", "rootfs"), destRootfs]);
    }
    await prepareRootfs(destRootfs);
    return toImageConfig(imageConfig);
  } catch (err) {
    if (destCreated) await rm(destRootfs, { recursive: true, force: true });
    throw err;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

// ---- archive formats ----

/** Where the tar keeps its oci-layout (at the top or in one directory) and its docker-save manifest.json. */
async function listTarRoots(archive: string, run: RunFn): Promise<{ ociLayout: string | null; manifestJson: string | null }> {
  let ociLayout: string | null = null;
  let manifestJson: string | null = null;
  try {
    await run("tar", ["-t", "--force-local", "-f", archive], {
      quiet: true,
      onStdoutLine: (name) => {
        const parts = name.replace(/^(\.\/)+/, "").split("/").filter((p) => p !== "" && p !== ".");
        if (parts.at(-1) === "oci-layout" && parts.length <= 2) {
          const dir = parts.slice(0, -1).join("/");
          // The top level wins over a directory.
          if (ociLayout === null || dir === "") ociLayout = dir;
        }
        if (parts.length === 1 && parts[0] === "manifest.json") manifestJson = name;
      },
    });
  } catch (err) {
    if (err instanceof ToolFailed) {
      throw new OciImportError(`${archive} is not a tar archive or OCI image layout (${err.stderrTail.trim().split("\n").at(-1) ?? ""})`);
    }
    throw err;
  }
  return { ociLayout, manifestJson };
}

/** The tool that decompresses the file, from its magic bytes; null when it is not compressed. */
async function compressionOf(path: string): Promise<string | null> {
  const handle = await open(path, "r");
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(6), 0, 6, 0);
    const head = buffer.subarray(0, bytesRead);
    const magic: [string, number[]][] = [
      ["gzip", [0x1f, 0x8b]],
      ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
      ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
      ["bzip2", [0x42, 0x5a, 0x68]],
    ];
    return magic.find(([, bytes]) => bytes.every((b, i) => head[i] === b))?.[0] ?? null;
  } finally {
    await handle.close();
  }
}

async function readTarMember(archive: string, member: string, run: RunFn): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  await run("tar", ["-x", "-O", "--force-local", "-f", archive, "--", member], {
    quiet: true,
    onStdout: (chunk, kill) => {
      size += chunk.length;
      if (size > MAX_JSON_BYTES) kill(new OciImportError(`${member} is larger than ${MAX_JSON_BYTES >> 20} MiB`));
      else chunks.push(chunk);
    },
  });
  return parseJson(Buffer.concat(chunks), member);
}

function dockerSaveCandidates(manifest: unknown): Candidate[] {
  if (!Array.isArray(manifest) || manifest.length === 0) throw new OciImportError("manifest.json of the docker save tarball lists no images");
  return manifest.map((entry: unknown, position) => {
    const tags = isRecord(entry) && Array.isArray(entry.RepoTags) ? entry.RepoTags.filter((t): t is string => typeof t === "string") : [];
    const config = isRecord(entry) && typeof entry.Config === "string" ? entry.Config : String(position);
    return { names: tags, label: tags.length ? tags.map(familiar).join(", ") : `@${position}`, key: `${position}:${config}`, position };
  });
}

function ociCandidates(index: { manifests: Descriptor[] }): Candidate[] {
  return index.manifests.map((d, i) => {
    const names = [d.annotations?.[REF_NAME], d.annotations?.[CONTAINERD_NAME]].filter((n): n is string => typeof n === "string" && n !== "");
    const containerd = d.annotations?.[CONTAINERD_NAME];
    const label = containerd ? familiar(containerd) : (names[0] ?? `@${i} (${d.digest.slice(0, 19)})`);
    return { names, label, key: d.digest, descriptor: d };
  });
}

/** Picks by exact name, then by normalized docker reference, then by tag alone; an ambiguous or missing pick lists the choices. */
function pickImage(candidates: Candidate[], image: string | undefined): Candidate {
  const distinct = (cs: Candidate[]) => [...new Map(cs.map((c) => [c.key, c])).values()];
  const all = distinct(candidates);
  const list = (cs: Candidate[]) => cs.map((c) => c.label).join("; ");
  if (all.length === 0) throw new OciImportError("the archive holds no images");
  if (image === undefined || image === "") {
    if (all.length === 1) return all[0]!;
    throw new OciImportError(`the archive holds ${all.length} images; choose one: ${list(all)}`);
  }
  const tiers: ((name: string) => boolean)[] = [
    (n) => n === image,
    (n) => canonical(n) === canonical(image),
    (n) => !/[:/@]/.test(image) && tagOf(n) === image,
  ];
  for (const matches of tiers) {
    const found = distinct(candidates.filter((c) => c.names.some(matches)));
    if (found.length === 1) return found[0]!;
    if (found.length > 1) throw new OciImportError(`"${image}" matches ${found.length} images; choose one: ${list(found)}`);
  }
  throw new OciImportError(`no image "${image}" in the archive; it holds: ${list(all)}`);
}

/** "docker.io/library/python:3" → "python:3", as docker shows names. */
function familiar(ref: string): string {
  return ref.replace(/^(?:index\.)?docker\.io\/(?:library\/)?/, "");
}

function canonical(ref: string): string {
  const short = familiar(ref);
  const last = short.slice(short.lastIndexOf("/") + 1);
  return last.includes(":") || last.includes("@") ? short : `${short}:latest`;
}

function tagOf(ref: string): string {
  const last = ref.slice(ref.lastIndexOf("/") + 1).split("@")[0]!;
  const colon = last.lastIndexOf(":");
  return colon === -1 ? last : last.slice(colon + 1);
}

// ---- OCI layout ----

async function readIndex(layout: string, strict: boolean): Promise<{ manifests: Descriptor[] }> {
  const index = parseJson(await readBounded(join(layout, "index.json"), strict, "index.json"), "index.json");
  if (!isRecord(index) || !Array.isArray(index.manifests)) throw new OciImportError("index.json has no manifests list");
  return { manifests: index.manifests.map((d, i) => asDescriptor(d, `index.json manifests[${i}]`)) };
}

class BlobReader {
  constructor(
    readonly layout: string,
    private readonly strict: boolean,
  ) {}

  /** Path of a blob, after checking it is a plain file (and, when strict, that nothing on the way is a symlink). */
  async path(d: Descriptor, what: string): Promise<string | null> {
    const [alg, hex] = d.digest.split(":") as [string, string];
    const parts = ["blobs", alg, hex];
    let path = this.layout;
    for (const [i, part] of parts.entries()) {
      path = join(path, part);
      const st = this.strict ? await lstatOrNull(path) : await stat(path).catch(() => null);
      if (!st) return null;
      if (i < parts.length - 1 ? !st.isDirectory() : !st.isFile()) throw new OciImportError(`${what} blob ${d.digest} is not a regular file`);
    }
    return path;
  }

  async read(d: Descriptor, what: string): Promise<Buffer> {
    if (d.size > MAX_JSON_BYTES) throw new OciImportError(`${what} ${d.digest} is larger than ${MAX_JSON_BYTES >> 20} MiB`);
    const path = await this.path(d, what);
    if (!path) throw new OciImportError(`${what} ${d.digest} is missing from the archive`);
    const data = await readBounded(path, this.strict, what);
    const [alg, hex] = d.digest.split(":") as [string, string];
    if (data.length !== d.size || createHash(alg).update(data).digest("hex") !== hex) {
      throw new OciImportError(`${what} ${d.digest} does not match its digest or size`);
    }
    return data;
  }
}

interface ResolvedManifest {
  config: Descriptor;
  layers: Descriptor[];
  /** The manifest as OCI: its own bytes when it already is one, else a converted copy. */
  descriptor: Descriptor;
  converted: Buffer | null;
}

/** Follows image indexes (choosing this host's platform) down to one manifest, converting a Docker manifest to OCI. */
async function resolveManifest(blobs: BlobReader, d: Descriptor, depth: number): Promise<ResolvedManifest> {
  if (depth > 4) throw new OciImportError("image indexes nest too deep");
  const data = await blobs.read(d, "manifest");
  const doc = parseJson(data, `manifest ${d.digest}`);
  if (!isRecord(doc)) throw new OciImportError(`manifest ${d.digest} is not an object`);
  const mediaType = typeof doc.mediaType === "string" ? doc.mediaType : d.mediaType;
  if (mediaType === MT.ociIndex || mediaType === MT.dockerList || (mediaType === undefined && Array.isArray(doc.manifests))) {
    if (!Array.isArray(doc.manifests)) throw new OciImportError(`image index ${d.digest} has no manifests`);
    const children = doc.manifests.map((c, i) => asDescriptor(c, `image index ${d.digest} manifests[${i}]`));
    return resolveManifest(blobs, await pickPlatform(blobs, children, d.digest), depth + 1);
  }
  if (mediaType !== undefined && mediaType !== MT.ociManifest && mediaType !== MT.dockerManifest) {
    throw new OciImportError(`unsupported manifest type ${mediaType}`);
  }
  if (!Array.isArray(doc.layers)) throw new OciImportError(`manifest ${d.digest} has no layers list`);
  const config = asDescriptor(doc.config, `manifest ${d.digest} config`);
  const layers = doc.layers.map((l, i) => asDescriptor(l, `manifest ${d.digest} layers[${i}]`));
  if (mediaType === MT.ociManifest) {
    return { config, layers, descriptor: { mediaType: MT.ociManifest, digest: d.digest, size: d.size }, converted: null };
  }
  // umoci reads only OCI manifests; Docker's differ in media types alone.
  const layerType = (l: Descriptor) => {
    if (l.mediaType === MT.dockerForeignLayer) throw new OciImportError("the image has foreign (Windows) layers");
    return l.mediaType === MT.dockerLayerGzip || l.mediaType === undefined ? MT.ociLayerGzip : l.mediaType;
  };
  const oci = {
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: layerType(l), digest: l.digest, size: l.size })),
  };
  const converted = Buffer.from(JSON.stringify(oci));
  const digest = `sha256:${createHash("sha256").update(converted).digest("hex")}`;
  return { config, layers, descriptor: { mediaType: MT.ociManifest, digest, size: converted.length }, converted };
}

async function pickPlatform(blobs: BlobReader, children: Descriptor[], indexDigest: string): Promise<Descriptor> {
  const arch = hostArch();
  const forHost = children.filter((c) => (c.platform?.os ?? "linux") === "linux" && c.platform?.architecture === arch);
  const candidates = forHost.length ? forHost : children.filter((c) => c.platform === undefined);
  // docker save of a multi-platform image often carries only the host's platform: take one that is present.
  for (const c of candidates) if (await blobs.path(c, "manifest")) return c;
  const platforms = children.map((c) => `${c.platform?.os ?? "?"}/${c.platform?.architecture ?? "?"}`).join(", ");
  throw new OciImportError(
    candidates.length
      ? `the image for linux/${arch} is referenced but missing from the archive (index ${indexDigest})`
      : `no image for linux/${arch} in index ${indexDigest} (it has: ${platforms})`,
  );
}

/** A layout holding only the chosen image under VIEW_TAG, so umoci never writes into (or sees ambiguity in) the source layout. */
async function buildView(view: string, blobs: BlobReader, manifest: ResolvedManifest): Promise<void> {
  await mkdir(join(view, "blobs", "sha256"), { recursive: true });
  await writeFile(join(view, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const link = async (d: Descriptor, what: string) => {
    const [alg, hex] = d.digest.split(":") as [string, string];
    const source = await blobs.path(d, what);
    if (!source) throw new OciImportError(`${what} ${d.digest} is missing from the archive`);
    await mkdir(join(view, "blobs", alg), { recursive: true });
    await symlink(source, join(view, "blobs", alg, hex)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
  };
  for (const layer of manifest.layers) await link(layer, "layer");
  await link(manifest.config, "image config");
  if (manifest.converted) {
    const hex = manifest.descriptor.digest.slice("sha256:".length);
    await writeFile(join(view, "blobs", "sha256", hex), manifest.converted);
  } else {
    await link(manifest.descriptor, "manifest");
  }
  const index = { schemaVersion: 2, manifests: [{ ...manifest.descriptor, annotations: { [REF_NAME]: VIEW_TAG } }] };
  await writeFile(join(view, "index.json"), JSON.stringify(index));
}

function asDescriptor(value: unknown, what: string): Descriptor {
  if (!isRecord(value)) throw new OciImportError(`${what} is not a descriptor`);
  const { digest, size, mediaType, annotations, platform } = value;
  if (typeof digest !== "string" || !/^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/.test(digest)) {
    throw new OciImportError(`${what} has an invalid digest`);
  }
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw new OciImportError(`${what} has an invalid size`);
  const d: Descriptor = { digest, size };
  if (typeof mediaType === "string") d.mediaType = mediaType;
  if (isRecord(annotations)) {
    d.annotations = Object.fromEntries(Object.entries(annotations).filter((e): e is [string, string] => typeof e[1] === "string"));
  }
  if (isRecord(platform)) {
    d.platform = {};
    if (typeof platform.os === "string") d.platform.os = platform.os;
    if (typeof platform.architecture === "string") d.platform.architecture = platform.architecture;
  }
  return d;
}

function hostArch(): string {
  const map: Record<string, string> = { x64: "amd64", ia32: "386", ppc64: "ppc64le" };
  return map[process.arch] ?? process.arch;
}

// ---- image config ----

function toImageConfig(doc: unknown): OciImageConfig {
  const c = isRecord(doc) && isRecord(doc.config) ? doc.config : {};
  const strings = (v: unknown) => (Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : []);
  const env: Record<string, string> = {};
  for (const entry of strings(c.Env)) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const workdir = typeof c.WorkingDir === "string" && c.WorkingDir !== "" && c.WorkingDir !== "/" ? c.WorkingDir : null;
  const rawUser = typeof c.User === "string" ? c.User.trim() : "";
  const [name, group] = rawUser.split(":");
  const isRoot = (name === "" || name === "root" || name === "0") && (group === undefined || group === "0" || group === "root");
  const argv = [...strings(c.Entrypoint), ...strings(c.Cmd)];
  return { env, workdir, user: isRoot ? null : rawUser, start: argv.length ? argv.map(shellQuote).join(" ") : null };
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

// ---- rootfs ----

/**
 * Adds what a Stasis template needs. The image is untrusted: any of these paths may be a symlink to a host path,
 * so each is checked with lstat and replaced, never written through.
 */
async function prepareRootfs(root: string): Promise<void> {
  await ensureDir(join(root, "tmp"), 0o1777, true);
  await ensureDir(join(root, "etc"), 0o755, false);
  const hosts = join(root, "etc", "hosts");
  if (!(await lstatOrNull(hosts))?.isFile()) {
    await rm(hosts, { recursive: true, force: true });
    await writeFile(hosts, "127.0.0.1 localhost sandbox\n::1 localhost\n", { flag: "wx", mode: 0o644 });
  }
  await ensureDir(join(root, ".stasis"), 0o755, false);
  const agent = join(root, ".stasis", "agent");
  const st = await lstatOrNull(agent);
  if (!st?.isFile() || st.size !== 0) {
    await rm(agent, { recursive: true, force: true });
    await writeFile(agent, "", { flag: "wx", mode: 0o755 });
  }
}

/** Makes `path` a real directory (replacing anything else there); `mode` is applied when created, or always with `forceMode`. */
async function ensureDir(path: string, mode: number, forceMode: boolean): Promise<void> {
  const st = await lstatOrNull(path);
  if (st?.isDirectory() && !forceMode) return;
  if (st && !st.isDirectory()) await rm(path, { recursive: true, force: true });
  if (!st?.isDirectory()) await mkdir(path);
  // Through an O_NOFOLLOW handle: chmod by path would follow a symlink.
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}

// ---- helpers ----

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return null;
    throw err;
  }
}

async function readBounded(path: string, strict: boolean, what: string): Promise<Buffer> {
  try {
    return await readBoundedFile(path, MAX_JSON_BYTES, { follow: !strict });
  } catch (err) {
    if (!(err instanceof BoundedReadError)) throw err;
    const why = { missing: "is missing from the archive", symlink: "is a symlink", not_regular: "is not a regular file", too_large: `is larger than ${MAX_JSON_BYTES >> 20} MiB` };
    throw new OciImportError(`${what} ${why[err.reason]}`);
  }
}

function parseJson(data: Buffer, what: string): Record<string, unknown> | unknown[] {
  try {
    const value: unknown = JSON.parse(data.toString("utf8"));
    if (isRecord(value) || Array.isArray(value)) return value;
  } catch {
    // Reported below.
  }
  throw new OciImportError(`${what} is not valid JSON`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---- running tools ----

class ToolFailed extends OciImportError {
  constructor(
    message: string,
    readonly stderrTail: string,
  ) {
    super(message);
  }
}

interface ToolOptions {
  cwd: string;
  signal?: AbortSignal;
  progress: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Keep stderr out of progress (it still goes into errors). */
  quiet?: boolean;
  onStdoutLine?: (line: string) => void;
  /** Sends stdout to this file instead. */
  stdoutFd?: number;
  /** Raw stdout; `kill` stops the tool and fails the run with the given error. */
  onStdout?: (chunk: Buffer, kill: (err: Error) => void) => void;
}
type RunFn = (cmd: string, args: string[], extra?: Omit<ToolOptions, "cwd" | "signal" | "progress">) => Promise<void>;

const INSTALL_HINT: Record<string, string> = { umoci: "umoci", skopeo: "skopeo", tar: "tar", xz: "xz-utils", zstd: "zstd", bzip2: "bzip2", gzip: "gzip" };

/** Runs a tool without a shell, streaming its output lines to progress; a failure carries the tail of its stderr. */
function runTool(cmd: string, args: string[], options: ToolOptions): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const { signal, progress } = options;
    if (signal?.aborted) return reject(signal.reason);
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", options.stdoutFd ?? "pipe", "pipe"] });
    let failure: Error | null = null;
    const kill = (err: Error) => {
      failure ??= err;
      child.kill("SIGKILL");
    };
    const onAbort = () => kill(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => kill(new Error(`${cmd} timed out after ${TOOL_TIMEOUT_MS / 60_000} minutes`)), TOOL_TIMEOUT_MS);

    let tail = "";
    const lineOut = (sink: (line: string) => void) =>
      new LineSplitter(64 * 1024, (line) => sink(line.toString("utf8").trimEnd()), () => {});
    const stdoutLines = lineOut(options.onStdoutLine ?? progress);
    const stderrLines = lineOut(options.quiet ? () => {} : progress);
    child.stdout?.on("data", (chunk: Buffer) => (options.onStdout ? options.onStdout(chunk, kill) : stdoutLines.push(chunk)));
    child.stderr?.on("data", (chunk: Buffer) => {
      tail = (tail + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES);
      stderrLines.push(chunk);
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      failure ??= err.code === "ENOENT" ? new Error(`${cmd} is not installed (apt-get install ${INSTALL_HINT[cmd] ?? cmd})`) : err;
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      stdoutLines.push(Buffer.from("\n"));
      stderrLines.push(Buffer.from("\n"));
      if (failure) return reject(failure);
      if (code === 0) return resolvePromise();
      const how = code === null ? `was killed by ${sig}` : `exited with ${code}`;
      reject(new ToolFailed(`${cmd} ${how}: ${tail.trim() || "(no output)"}`, tail));
    });
  });
}
