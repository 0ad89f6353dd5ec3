// Imports an image (docker save tarball, OCI layout or its tar) as a template's root filesystem: the archive is
// read (oci/archive.ts, oci/layout.ts), converted with skopeo and unpacked with umoci (oci/run-tool.ts).
import { mkdir, mkdtemp, open, rename, rm, stat, symlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { compressionOf, dockerSaveCandidates, listTarRoots, ociCandidates, pickImage, readTarMember } from "./oci/archive.js";
import { prepareRootfs, toImageConfig, type OciImageConfig } from "./oci/image-config.js";
import { BlobReader, buildView, hostArch, readIndex, REF_NAME, resolveManifest, VIEW_TAG, type Descriptor } from "./oci/layout.js";
import { runTool, type ToolOptions } from "./oci/run-tool.js";
import { isRecord, lstatOrNull, OciImportError, parseJson } from "./oci/untrusted-input.js";

export type { OciImageConfig } from "./oci/image-config.js";
export { OciImportError } from "./oci/untrusted-input.js";

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
