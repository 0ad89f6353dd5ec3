// OCI image layouts: the index, blobs checked against their digests, manifests down to this host's platform,
// and the one-image view umoci unpacks.
import { createHash } from "node:crypto";
import { mkdir, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isRecord, lstatOrNull, MAX_JSON_BYTES, OciImportError, parseJson, readBounded } from "./untrusted-input.js";

/** The single tag of the layout umoci unpacks from (see buildView). */
export const VIEW_TAG = "import";

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
export const REF_NAME = "org.opencontainers.image.ref.name";
export const CONTAINERD_NAME = "io.containerd.image.name";

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string };
}

export async function readIndex(layout: string, strict: boolean): Promise<{ manifests: Descriptor[] }> {
  const index = parseJson(await readBounded(join(layout, "index.json"), strict, "index.json"), "index.json");
  if (!isRecord(index) || !Array.isArray(index.manifests)) throw new OciImportError("index.json has no manifests list");
  return { manifests: index.manifests.map((d, i) => asDescriptor(d, `index.json manifests[${i}]`)) };
}

export class BlobReader {
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

export interface ResolvedManifest {
  config: Descriptor;
  layers: Descriptor[];
  /** The manifest as OCI: its own bytes when it already is one, else a converted copy. */
  descriptor: Descriptor;
  converted: Buffer | null;
}

/** Follows image indexes (choosing this host's platform) down to one manifest, converting a Docker manifest to OCI. */
export async function resolveManifest(blobs: BlobReader, d: Descriptor, depth: number): Promise<ResolvedManifest> {
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
export async function buildView(view: string, blobs: BlobReader, manifest: ResolvedManifest): Promise<void> {
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

export function hostArch(): string {
  const map: Record<string, string> = { x64: "amd64", ia32: "386", ppc64: "ppc64le" };
  return map[process.arch] ?? process.arch;
}
