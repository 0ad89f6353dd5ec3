import type { FileInfo, FileList } from "@stasis/protocol";
import { FileNotFoundError, protocolError } from "./errors.js";
import { transportError, type HttpClient } from "./http.js";
import { wholeBody } from "./node-transport.js";
import { openWatch, type FileWatch, type WatchOptions } from "./watch.js";

export type WriteData = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>;

export interface WriteOptions {
  /** Permission bits in octal, e.g. "644" (a number is taken as the bits themselves, e.g. 0o644). */
  mode?: string | number;
  /** Owner of the new file inside the sandbox. */
  user?: string;
  signal?: AbortSignal;
}

export interface TransferOptions {
  signal?: AbortSignal;
}

/** `sandbox.files`: the sandbox's filesystem. Paths are absolute paths inside the sandbox. */
export class Files {
  constructor(
    private readonly http: HttpClient,
    private readonly sandboxId: string,
  ) {}

  private get params() {
    return { id: this.sandboxId };
  }

  async read(path: string, options: TransferOptions = {}): Promise<Uint8Array> {
    const { response } = await this.open(path, options);
    try {
      return (await wholeBody(response)) ?? new Uint8Array(await response.arrayBuffer());
    } catch (err) {
      throw transportError(err, `reading ${path}`, options.signal, undefined);
    }
  }

  async readText(path: string, options: TransferOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, options));
  }

  /** The file's bytes as they arrive; cancel the stream to stop the transfer. */
  async readStream(path: string, options: TransferOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const { response, requestId } = await this.open(path, options);
    if (!response.body) throw protocolError("file read replied without a body", response.status, requestId);
    return response.body;
  }

  /** Writes atomically, creating parent directories. */
  async write(path: string, data: WriteData, options: WriteOptions = {}): Promise<FileInfo> {
    const mode = typeof options.mode === "number" ? options.mode.toString(8) : options.mode;
    return this.http.json("writeFile", {
      params: this.params,
      query: { path, mode, user: options.user },
      raw: typeof data === "string" ? new TextEncoder().encode(data) : data,
      signal: options.signal,
      // Uploads take as long as they take; the caller's signal bounds them.
      timeoutMs: null,
    });
  }

  /** Lists a directory, recursing `depth` levels (default 1). */
  async list(path: string, options: { depth?: number } = {}): Promise<FileList> {
    return this.http.json("listFiles", { params: this.params, query: { path, depth: options.depth } });
  }

  /** Stats a path without following a final symlink. */
  async stat(path: string): Promise<FileInfo> {
    return this.http.json("statFile", { params: this.params, query: { path } });
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (err) {
      if (err instanceof FileNotFoundError) return false;
      throw err;
    }
  }

  /** Creates a directory and its parents; resolves to false when it already existed. */
  async mkdir(path: string, options: { user?: string } = {}): Promise<boolean> {
    return (await this.http.json("makeDir", { params: this.params, json: { path, user: options.user } })).created;
  }

  async move(from: string, to: string): Promise<FileInfo> {
    return this.http.json("moveFile", { params: this.params, json: { from, to } });
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    await this.http.empty("removeFile", { params: this.params, query: { path, recursive: options.recursive } });
  }

  /** Watches a directory; resolves once the watch is in place. Iterate the result for changes. */
  watch(path: string, options: WatchOptions = {}): Promise<FileWatch> {
    return openWatch(this.http, this.sandboxId, path, options);
  }

  private open(path: string, options: TransferOptions) {
    return this.http.open("readFile", { params: this.params, query: { path }, signal: options.signal });
  }
}
