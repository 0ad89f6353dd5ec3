import { ApiError } from "../errors/api-error.js";
import { AgentConnection } from "./agent-connection.js";
import {
  MAX_SENT_PAYLOAD,
  PTY_WATCH_PROTOCOL,
  MAX_LINE_DATA,
  type AgentStat,
  type AttachRequest,
  type AttachResult,
  type ExecRequest,
  type ExecResult,
  type ListResult,
  type MkdirRequest,
  type MkdirResult,
  type PingResult,
  type PrewarmRequest,
  type PsResult,
  type ReadRequest,
  type ReadResult,
  type SignalRequest,
  type StatsResult,
  type WriteOpenRequest,
} from "./agent-protocol.js";
import { openFile, readFileChunks, writeFileFrom, type WriteFileOptions } from "./file-transfer.js";

export { type ProcessEvent } from "./agent-connection.js";
export { MAX_LINE_BYTES } from "./agent-protocol.js";

/**
 * One typed method per agent op (docs/agent-protocol.md). Requests travel as JSON lines, and bulk data
 * (file bodies, stdin) as binary frames when the agent speaks protocol 2; an agent of protocol 1 (one
 * restored from an old checkpoint, or reattached after a daemon upgrade) gets base64 lines.
 */
export class AgentClient extends AgentConnection {
  exec(req: ExecRequest): Promise<ExecResult> {
    return this.result("exec", req);
  }

  ps(): Promise<PsResult> {
    return this.result("ps", {});
  }

  async signal(req: SignalRequest): Promise<void> {
    await this.call("signal", req);
  }

  attach(req: AttachRequest): Promise<AttachResult> {
    return this.result("attach", req);
  }

  async detach(pid: number): Promise<void> {
    await this.call("detach", { pid });
  }

  /** Writes to a process's stdin (as a frame's payload when the agent takes frames), then closes it on eof. */
  async stdin(pid: number, data: Buffer, eof: boolean): Promise<void> {
    const limit = this.framed ? MAX_SENT_PAYLOAD : MAX_LINE_DATA;
    // Split so that no message exceeds the protocol's limit; only the last one closes stdin.
    for (let off = 0; off < data.length || off === 0; off += limit) {
      const piece = data.subarray(off, off + limit);
      const last = off + limit >= data.length;
      if (this.framed) await this.call("stdin", { pid, eof: eof && last }, { payload: piece });
      else await this.call("stdin", { pid, data: piece.toString("base64"), eof: eof && last });
    }
  }

  /** Returns output credit to the agent (fire-and-forget). */
  ack(pid: number, bytes: number): void {
    this.send("ack", { pid, bytes });
  }

  async prewarm(req: PrewarmRequest): Promise<void> {
    await this.call("prewarm", req);
  }

  stat(path: string): Promise<AgentStat> {
    return this.result("stat", { path });
  }

  list(path: string, depth: number, timeoutMs = 60_000): Promise<ListResult> {
    return this.result("list", { path, depth }, timeoutMs);
  }

  mkdir(req: MkdirRequest): Promise<MkdirResult> {
    return this.result("mkdir", req);
  }

  async move(from: string, to: string): Promise<void> {
    await this.call("move", { from, to });
  }

  async remove(path: string, recursive: boolean, timeoutMs = 120_000): Promise<void> {
    await this.call("remove", { path, recursive }, { timeoutMs });
  }

  /** One chunk of a file: as a frame's payload from an agent of protocol 2, else base64. */
  async read(req: ReadRequest): Promise<ReadResult> {
    const { result, payload } = await this.call("read", req, { framed: this.framed });
    const data = payload ?? Buffer.from(result.data ?? "", "base64");
    if (data.length > req.length) throw new ApiError("sandbox_failed", `the sandbox agent answered a ${req.length}-byte read with ${data.length} bytes`);
    return { data, eof: result.eof, size: result.size };
  }

  async writeOpen(req: WriteOpenRequest): Promise<string> {
    return (await this.call("write_open", req)).result.handle;
  }

  async writeChunk(handle: string, data: Buffer): Promise<void> {
    if (this.framed) await this.call("write_chunk", { handle }, { payload: data });
    else await this.call("write_chunk", { handle, data: data.toString("base64") });
  }

  /** Renames the written file into place; resolves with it as written. */
  writeClose(handle: string): Promise<AgentStat> {
    return this.result("write_close", { handle });
  }

  async writeAbort(handle: string): Promise<void> {
    await this.call("write_abort", { handle });
  }

  /** Sets a terminal's size (protocol 3). */
  async resize(pid: number, cols: number, rows: number): Promise<void> {
    await this.call("resize", { pid, cols, rows });
  }

  /** Settles once the watches a previous channel left in the agent are gone (see clearWatches). */
  private cleared: Promise<void> = Promise.resolve();

  /**
   * Ends the watches nobody reads any more: those of the daemon before a restart, or of this sandbox's
   * streams before a hibernation (the restored agent still has them). Called as the channel is attached;
   * watches started on it wait for this first, so it can never end one of theirs.
   */
  clearWatches(): void {
    if ((this.protocol ?? 1) < PTY_WATCH_PROTOCOL) return;
    this.cleared = this.unwatch(null).catch(() => {});
  }

  /** Starts a watch (protocol 3); its changes come as `fs` events to `onWatch(wid)`. */
  async watch(path: string, recursive: boolean): Promise<number> {
    await this.cleared;
    return (await this.call("watch", { path, recursive })).result.wid;
  }

  /** Ends a watch, or every watch (`null`: what a previous daemon left running). */
  async unwatch(wid: number | null): Promise<void> {
    await this.call("unwatch", wid === null ? { all: true } : { wid });
  }

  ping(): Promise<PingResult> {
    return this.result("ping", {});
  }

  stats(): Promise<StatsResult> {
    return this.result("stats", {});
  }

  /** Streams a file in chunks, several requests in flight. `size` (from a stat) sizes the read-ahead. */
  readFile(path: string, size: number): AsyncGenerator<Buffer> {
    return readFileChunks(this, path, size);
  }

  /** Reads the first chunk (any error is thrown here), then streams the file: see `openFile`. */
  openFile(path: string): Promise<{ size: number; body: AsyncGenerator<Buffer> }> {
    return openFile(this, path);
  }

  /** Writes a file atomically from a byte stream, several chunks in flight; aborts on any failure. */
  writeFile(path: string, source: AsyncIterable<Uint8Array>, options: WriteFileOptions): Promise<AgentStat> {
    return writeFileFrom(this, path, source, options);
  }

  private async result<K extends "exec" | "ps" | "attach" | "prewarm" | "signal" | "stat" | "list" | "mkdir" | "write_close" | "ping" | "stats">(op: K, args: object, timeoutMs?: number) {
    return (await this.call(op, args, timeoutMs === undefined ? {} : { timeoutMs })).result;
  }
}

