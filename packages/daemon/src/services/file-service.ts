import type { FileInfo, FileList } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import type { SandboxService } from "./sandbox-service.js";

/** Bytes per agent read/write message: large enough to amortise the round trip, small enough to interleave. */
const CHUNK_BYTES = 512 * 1024;

type AgentStat = {
  name: string;
  path: string;
  type: FileInfo["type"];
  size: number;
  mode: number;
  mtimeMs: number;
  uid: number;
  gid: number;
  symlinkTarget?: string | null;
};

/**
 * File operations go through the agent, never the host path: gVisor caches the root filesystem, so the
 * host must not write behind its back, and the agent sees exactly what the sandbox sees.
 */
export class FileService {
  constructor(
    private readonly sandboxes: SandboxService,
    private readonly maxUploadBytes: number,
  ) {}

  async stat(id: string, path: string): Promise<FileInfo> {
    const live = await this.sandboxes.acquire(id);
    return toFileInfo(await live.agent.request<AgentStat>("stat", { path }));
  }

  async list(id: string, path: string, depth: number): Promise<FileList> {
    const live = await this.sandboxes.acquire(id);
    const result = await live.agent.request<{ entries: AgentStat[]; truncated: boolean }>("list", { path, depth }, 60_000);
    return { entries: result.entries.map(toFileInfo), truncated: result.truncated };
  }

  /** Checks the file and returns its size and a byte stream read in chunks through the agent. */
  async read(id: string, path: string): Promise<{ size: number; body: AsyncGenerator<Buffer> }> {
    const live = await this.sandboxes.acquire(id);
    const info = await live.agent.request<AgentStat>("stat", { path });
    if (info.type === "dir") throw new ApiError("is_a_directory", `${path} is a directory`);
    async function* body(): AsyncGenerator<Buffer> {
      let offset = 0;
      for (;;) {
        const r = await live.agent.request<{ data: string; eof: boolean }>("read", { path, offset, length: CHUNK_BYTES });
        const data = Buffer.from(r.data, "base64");
        offset += data.length;
        if (data.length > 0) yield data;
        if (r.eof || data.length === 0) return;
      }
    }
    return { size: info.size, body: body() };
  }

  /** Writes a file atomically from a byte stream; aborts (leaving the old file) if the stream fails or is too large. */
  async write(
    id: string,
    path: string,
    source: AsyncIterable<Uint8Array>,
    options: { mode?: number; user?: string },
  ): Promise<FileInfo> {
    const live = await this.sandboxes.acquire(id);
    const { handle } = await live.agent.request<{ handle: string }>("write_open", {
      path,
      ...(options.mode !== undefined ? { mode: options.mode } : {}),
      ...(options.user ? { user: options.user } : {}),
      parents: true,
    });
    let total = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const data = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      for (let off = 0; off < data.length; off += CHUNK_BYTES) {
        await live.agent.request("write_chunk", { handle, data: data.subarray(off, off + CHUNK_BYTES).toString("base64") });
      }
    };
    try {
      for await (const chunk of source) {
        total += chunk.length;
        if (total > this.maxUploadBytes) throw new ApiError("payload_too_large", `file exceeds the ${this.maxUploadBytes}-byte upload limit`);
        pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        pendingBytes += chunk.length;
        if (pendingBytes >= CHUNK_BYTES) await flush();
      }
      await flush();
      // The file as written (not a later stat: a process in the sandbox may consume it at once).
      return toFileInfo(await live.agent.request<AgentStat>("write_close", { handle }));
    } catch (err) {
      await live.agent.request("write_abort", { handle }).catch(() => {});
      throw err;
    }
  }

  async mkdir(id: string, path: string, user?: string): Promise<{ created: boolean }> {
    const live = await this.sandboxes.acquire(id);
    return live.agent.request<{ created: boolean }>("mkdir", { path, parents: true, ...(user ? { user } : {}) });
  }

  async move(id: string, from: string, to: string): Promise<FileInfo> {
    const live = await this.sandboxes.acquire(id);
    await live.agent.request("move", { from, to });
    return this.stat(id, to);
  }

  async remove(id: string, path: string, recursive: boolean): Promise<void> {
    const live = await this.sandboxes.acquire(id);
    await live.agent.request("remove", { path, recursive }, 120_000);
  }
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
