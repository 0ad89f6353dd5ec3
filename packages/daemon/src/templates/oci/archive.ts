// The archive a user imports: a tar holding an OCI layout or a docker save tarball, and the image picked from it.
import { open } from "node:fs/promises";
import { CONTAINERD_NAME, REF_NAME, type Descriptor } from "./layout.js";
import { ToolFailed, type RunFn } from "./run-tool.js";
import { isRecord, MAX_JSON_BYTES, OciImportError, parseJson } from "./untrusted-input.js";

/** One image an archive offers: the names it can be picked by, and where it is. */
export interface Candidate {
  names: string[];
  /** What lists it to the user. */
  label: string;
  /** Same key = same image (several tags of one image are not a choice). */
  key: string;
  descriptor?: Descriptor;
  /** Position in a docker-save manifest.json. */
  position?: number;
}

/** Where the tar keeps its oci-layout (at the top or in one directory) and its docker-save manifest.json. */
export async function listTarRoots(archive: string, run: RunFn): Promise<{ ociLayout: string | null; manifestJson: string | null }> {
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
export async function compressionOf(path: string): Promise<string | null> {
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

export async function readTarMember(archive: string, member: string, run: RunFn): Promise<unknown> {
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

export function dockerSaveCandidates(manifest: unknown): Candidate[] {
  if (!Array.isArray(manifest) || manifest.length === 0) throw new OciImportError("manifest.json of the docker save tarball lists no images");
  return manifest.map((entry: unknown, position) => {
    const tags = isRecord(entry) && Array.isArray(entry.RepoTags) ? entry.RepoTags.filter((t): t is string => typeof t === "string") : [];
    const config = isRecord(entry) && typeof entry.Config === "string" ? entry.Config : String(position);
    return { names: tags, label: tags.length ? tags.map(familiar).join(", ") : `@${position}`, key: `${position}:${config}`, position };
  });
}

export function ociCandidates(index: { manifests: Descriptor[] }): Candidate[] {
  return index.manifests.map((d, i) => {
    const names = [d.annotations?.[REF_NAME], d.annotations?.[CONTAINERD_NAME]].filter((n): n is string => typeof n === "string" && n !== "");
    const containerd = d.annotations?.[CONTAINERD_NAME];
    const label = containerd ? familiar(containerd) : (names[0] ?? `@${i} (${d.digest.slice(0, 19)})`);
    return { names, label, key: d.digest, descriptor: d };
  });
}

/** Picks by exact name, then by normalized docker reference, then by tag alone; an ambiguous or missing pick lists the choices. */
export function pickImage(candidates: Candidate[], image: string | undefined): Candidate {
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
