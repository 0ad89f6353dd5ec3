import type { FileInfo, FileList } from "@stasis/protocol";
import type { AgentStat } from "../agent-client/agent-protocol.js";
import { ApiError } from "../errors/api-error.js";
import type { FailedSandboxFiles } from "./failed-files.js";
import type { LiveSandbox, SandboxService } from "./sandbox-service.js";

/** Where a symlink leads once every link is followed; null for other entries and links that lead nowhere. */
export interface LinkTarget {
  path: string;
  type: FileInfo["type"];
  mode: number;
}
export interface LinkedFileInfo {
  info: FileInfo;
  link: LinkTarget | null;
}

/**
 * File operations go through the agent, never the host path: gVisor caches the root filesystem, so the
 * host must not write behind its back, and the agent sees exactly what the sandbox sees. The one exception:
 * a failed sandbox (no runtime, no agent) keeps its files, which are read from the host, read-only.
 */
export class FileService {
  constructor(
    private readonly sandboxes: SandboxService,
    private readonly maxUploadBytes: number,
  ) {}

  async stat(id: string, path: string): Promise<FileInfo> {
    const from = await this.readable(id);
    if ("failed" in from) return from.failed.stat(path);
    return toFileInfo(await from.live.agent.stat(path));
  }

  /** `stat`, with where a symlink leads (E2B's envd describes a link by its final target). */
  async statLinked(id: string, path: string): Promise<LinkedFileInfo> {
    const live = await this.sandboxes.acquire(id);
    return linked(await live.agent.stat(path));
  }

  /** `list`, with where each symlink leads. */
  async listLinked(id: string, path: string, depth: number): Promise<LinkedFileInfo[]> {
    const live = await this.sandboxes.acquire(id);
    return (await live.agent.list(path, depth)).entries.map(linked);
  }

  async list(id: string, path: string, depth: number): Promise<FileList> {
    const from = await this.readable(id);
    if ("failed" in from) return from.failed.list(path, depth);
    const result = await from.live.agent.list(path, depth);
    return { entries: result.entries.map(toFileInfo), truncated: result.truncated };
  }

  /**
   * Returns the file's size and a byte stream read in chunks through the agent. Everything that makes
   * the path unreadable is found before this returns (the first chunk is read here), so the HTTP reply
   * is an error, never a 200 whose body aborts.
   */
  async read(id: string, path: string): Promise<{ size: number; body: AsyncGenerator<Buffer> }> {
    const from = await this.readable(id);
    if ("failed" in from) return from.failed.read(path);
    const { live } = from;
    // An agent from before `not_regular` reads devices and FIFOs: its lstat tells them apart.
    const lstat = live.agent.stat(path);
    lstat.catch(() => {});
    const file = await live.agent.openFile(path);
    const info = await lstat.catch(() => null);
    if (info?.type === "other") {
      await file.body.return(undefined);
      throw new ApiError("not_a_regular_file", `${path} is not a regular file (a FIFO, device or socket)`);
    }
    return file;
  }

  /**
   * The live sandbox to read through, or for a failed one (which `acquire` refuses) the reader of its
   * kept files: the common case costs nothing more than `acquire`.
   */
  private async readable(id: string): Promise<{ live: LiveSandbox } | { failed: FailedSandboxFiles }> {
    try {
      return { live: await this.sandboxes.acquire(id) };
    } catch (err) {
      const failed = err instanceof ApiError && err.code === "sandbox_not_running" ? await this.sandboxes.failedFiles(id) : null;
      if (failed) return { failed };
      throw err;
    }
  }

  /** Writes a file atomically from a byte stream; aborts (leaving the old file) if the stream fails or is too large. */
  async write(
    id: string,
    path: string,
    source: AsyncIterable<Uint8Array>,
    options: { mode?: number; user?: string },
  ): Promise<FileInfo> {
    const live = await this.sandboxes.acquire(id);
    return toFileInfo(await live.agent.writeFile(path, source, { ...options, maxBytes: this.maxUploadBytes }));
  }

  async mkdir(id: string, path: string, user?: string): Promise<{ created: boolean }> {
    const live = await this.sandboxes.acquire(id);
    return live.agent.mkdir({ path, parents: true, ...(user ? { user } : {}) });
  }

  async move(id: string, from: string, to: string): Promise<FileInfo> {
    const live = await this.sandboxes.acquire(id);
    await live.agent.move(from, to);
    return this.stat(id, to);
  }

  async remove(id: string, path: string, recursive: boolean): Promise<void> {
    const live = await this.sandboxes.acquire(id);
    await live.agent.remove(path, recursive);
  }
}

function linked(s: AgentStat): LinkedFileInfo {
  return { info: toFileInfo(s), link: s.type === "symlink" && s.resolved ? { ...s.resolved } : null };
}

function toFileInfo(s: AgentStat): FileInfo {
  return {
    name: s.name,
    path: s.path,
    type: s.type,
    size: s.size,
    mode: s.mode,
    mtime: new Date(s.mtimeMs).toISOString(),
    uid: s.uid,
    gid: s.gid,
    symlinkTarget: s.symlinkTarget ?? null,
  };
}
