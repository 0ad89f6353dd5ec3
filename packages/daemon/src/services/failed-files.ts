import { createReadStream, type Stats } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { posix } from "node:path";
import type { FileInfo, FileList } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";

/** Symlinks followed in one path, as Linux allows (ELOOP beyond). */
const MAX_SYMLINKS = 40;
/** Entries listed at most (a listing is one reply). */
const MAX_ENTRIES = 10_000;

/**
 * Reads the files of a failed sandbox from the host, read-only: its runtime is gone, so there is no agent
 * to ask, and its files are kept for the user until a delete. Paths resolve as inside the sandbox: `/` is
 * the sandbox's root, and symlinks (absolute or relative, `..` included) never leave it. Only used once
 * the sandbox's runtime is known to be dead, so nothing inside can swap a path while it is resolved.
 */
export class FailedSandboxFiles {
  /** `root`: the sandbox's root filesystem on the host; `owner`: the host uid of its root (0, or the userns base). */
  constructor(
    private readonly root: string,
    private readonly owner: number,
  ) {}

  async stat(path: string): Promise<FileInfo> {
    const host = await this.resolve(path, false);
    return this.info(path, host, await lstat(host));
  }

  async list(path: string, depth: number): Promise<FileList> {
    const dir = await this.resolve(path, true);
    if (!(await lstat(dir)).isDirectory()) throw new ApiError("not_a_directory", `${path} is not a directory`);
    const entries: FileInfo[] = [];
    let level = [{ inside: posix.resolve("/", path), host: dir }];
    for (let d = 0; d < Math.max(1, depth) && level.length > 0; d++) {
      const next: typeof level = [];
      for (const { inside, host } of level) {
        for (const name of (await readdir(host)).sort()) {
          if (entries.length >= MAX_ENTRIES) return { entries, truncated: true };
          const child = { inside: posix.join(inside, name), host: posix.join(host, name) };
          const st = await lstat(child.host);
          entries.push(await this.info(child.inside, child.host, st));
          if (st.isDirectory()) next.push(child);
        }
      }
      level = next;
    }
    return { entries, truncated: false };
  }

  async read(path: string): Promise<{ size: number; body: AsyncGenerator<Buffer> }> {
    const host = await this.resolve(path, true);
    const st = await lstat(host);
    if (st.isDirectory()) throw new ApiError("is_a_directory", `${path} is a directory`);
    if (!st.isFile()) throw new ApiError("invalid_request", `${path} is not a regular file`);
    async function* body(): AsyncGenerator<Buffer> {
      for await (const chunk of createReadStream(host, { highWaterMark: 1024 * 1024 })) yield chunk as Buffer;
    }
    return { size: st.size, body: body() };
  }

  /** The host path of `path` as the sandbox would resolve it; the last symlink is followed when `follow`. */
  private async resolve(path: string, follow: boolean): Promise<string> {
    if (!path.startsWith("/")) throw new ApiError("invalid_request", `path ${path} must be absolute`);
    const pending = path.split("/").filter((c) => c !== "" && c !== ".");
    const done: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === "..") {
        done.pop();
        continue;
      }
      const host = posix.join(this.root, ...done, name);
      const st = await lstat(host).catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT" || err.code === "ENOTDIR") throw new ApiError("file_not_found", `${path} does not exist`);
        throw err;
      });
      if (st.isSymbolicLink() && (follow || pending.length > 0)) {
        if (++links > MAX_SYMLINKS) throw new ApiError("invalid_request", `${path}: too many levels of symbolic links`);
        const target = await readlink(host);
        if (target.startsWith("/")) done.length = 0;
        pending.unshift(...target.split("/").filter((c) => c !== "" && c !== "."));
        continue;
      }
      if (pending.length > 0 && !st.isDirectory()) throw new ApiError("not_a_directory", `${path}: ${posix.join("/", ...done, name)} is not a directory`);
      done.push(name);
    }
    return posix.join(this.root, ...done);
  }

  private async info(path: string, host: string, st: Stats): Promise<FileInfo> {
    const inside = posix.resolve("/", path);
    return {
      name: posix.basename(inside) || "/",
      path: inside,
      type: st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other",
      size: st.size,
      mode: st.mode & 0o7777,
      mtime: st.mtime.toISOString(),
      uid: this.inside(st.uid),
      gid: this.inside(st.gid),
      symlinkTarget: st.isSymbolicLink() ? await readlink(host) : null,
    };
  }

  /** A host id as the sandbox sees it (crun sandboxes' ids are shifted by their user namespace). */
  private inside(id: number): number {
    return id >= this.owner ? id - this.owner : id;
  }
}
