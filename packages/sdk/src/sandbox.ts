import type { CreateSandboxRequest, NetworkPolicy, PortList, Preview, Sandbox as SandboxInfo, SandboxMetrics, SetPreviewRequest, SignedPreviewUrl, SandboxState, StandbyPolicy } from "@stasis/protocol";
import { Code } from "./code.js";
import { Commands } from "./commands.js";
import { splitConnection, type ConnectionOptions } from "./connection.js";
import { Files } from "./files.js";
import { HttpClient } from "./http.js";
import { connectPort, forwardPort, type ForwardOptions, type PortForwarding } from "./port-forward.js";
import type { Duplex } from "node:stream";
import { Pty } from "./pty.js";

export type { SandboxInfo };

export interface ListSandboxesOptions {
  state?: SandboxState;
  /** Only sandboxes whose metadata has all these pairs (or the wire form "k=v&k2=v2"). */
  metadata?: Record<string, string> | string;
  /** Page size, 1..1000 (daemon default 100). */
  limit?: number;
  cursor?: string;
}

export interface SandboxPage {
  sandboxes: SandboxInfo[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

/** A sandbox on a Stasis daemon, with `commands` and `files` grouped under it. */
export class Sandbox {
  readonly commands: Commands;
  readonly files: Files;
  /** The code interpreter (sandboxes of the code-interpreter template): `sandbox.code.run(...)`. */
  readonly code: Code;
  readonly pty: Pty;

  private constructor(
    private readonly http: HttpClient,
    private latest: SandboxInfo,
  ) {
    this.commands = new Commands(http, latest.id);
    this.files = new Files(http, latest.id);
    this.code = new Code(http, latest.id);
    this.pty = new Pty(http, latest.id);
  }

  get id(): string {
    return this.latest.id;
  }

  /** The sandbox resource as of the last call that returned it. */
  get info(): SandboxInfo {
    return this.latest;
  }

  /** Creates a sandbox and resolves once it runs. */
  static async create(options: CreateSandboxRequest & ConnectionOptions = {}): Promise<Sandbox> {
    const { connection, rest } = splitConnection(options);
    const http = new HttpClient(connection);
    return new Sandbox(http, await http.json("createSandbox", { json: rest }));
  }

  /** Attaches to an existing sandbox; throws SandboxNotFoundError if there is none. */
  static async connect(id: string, connection: ConnectionOptions = {}): Promise<Sandbox> {
    const http = new HttpClient(connection);
    return new Sandbox(http, await http.json("getSandbox", { params: { id } }));
  }

  /** One page of sandboxes, newest first. */
  static async list(query: ListSandboxesOptions = {}, connection: ConnectionOptions = {}): Promise<SandboxPage> {
    const { metadata, ...rest } = query;
    const encoded = typeof metadata === "object" ? new URLSearchParams(metadata).toString() : metadata;
    return new HttpClient(connection).json("listSandboxes", { query: { ...rest, metadata: encoded || undefined } });
  }

  /** Every matching sandbox, fetching pages as the loop advances. */
  static async *listAll(query: Omit<ListSandboxesOptions, "cursor"> = {}, connection: ConnectionOptions = {}): AsyncGenerator<SandboxInfo, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await Sandbox.list({ ...query, ...(cursor ? { cursor } : {}) }, connection);
      yield* page.sandboxes;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /** Kills a sandbox and deletes it with its files. */
  static async kill(id: string, connection: ConnectionOptions = {}): Promise<void> {
    await new HttpClient(connection).empty("deleteSandbox", { params: { id } });
  }

  async refresh(): Promise<SandboxInfo> {
    this.latest = await this.http.json("getSandbox", { params: { id: this.id } });
    return this.latest;
  }

  /** Makes the sandbox expire `timeoutMs` from now (extends or shortens its life). */
  async setTimeout(timeoutMs: number): Promise<SandboxInfo> {
    this.latest = await this.http.json("setSandboxTimeout", { params: { id: this.id }, json: { timeoutMs } });
    return this.latest;
  }

  /** Freezes the sandbox in RAM (no CPU; memory, processes and files kept). Any later call wakes it. */
  async pause(): Promise<SandboxInfo> {
    this.latest = await this.http.json("pauseSandbox", { params: { id: this.id } });
    return this.latest;
  }

  /**
   * Checkpoints the sandbox to disk (no CPU, no memory); any later call restores memory, processes and files.
   * Throws NotSupportedByRuntimeError on crun, which cannot checkpoint.
   */
  async hibernate(): Promise<SandboxInfo> {
    this.latest = await this.http.json("hibernateSandbox", { params: { id: this.id } });
    return this.latest;
  }

  /** Wakes a paused or hibernated sandbox. Commands and file calls do this on their own; this wakes it ahead of time. */
  async resume(): Promise<SandboxInfo> {
    this.latest = await this.http.json("resumeSandbox", { params: { id: this.id } });
    return this.latest;
  }

  /**
   * Makes `count` independent sandboxes from this one's current memory, processes and files; this one goes on
   * unchanged. Throws NotSupportedByRuntimeError on crun, which cannot checkpoint.
   */
  async fork(count = 1): Promise<Sandbox[]> {
    const { sandboxes } = await this.http.json("forkSandbox", { params: { id: this.id }, json: { count } });
    return sandboxes.map((info) => new Sandbox(this.http, info));
  }

  /** Changes when the sandbox pauses and hibernates on its own and what its lifetime's end does; omitted fields stay. */
  async setStandbyPolicy(policy: StandbyPolicy): Promise<SandboxInfo> {
    this.latest = await this.http.json("setStandbyPolicy", { params: { id: this.id }, json: policy });
    return this.latest;
  }

  /**
   * The URL of a port of the sandbox (`http://<port>-<id>.localhost:7070` by default): any TCP port a
   * process listens on. Private unless the sandbox is public: send `X-Stasis-Preview-Token` (see
   * `getPreview()`), or hand a browser `signUrl(port)`. A request to a sleeping sandbox wakes it.
   */
  async getUrl(port: number): Promise<string> {
    return (await this.getPreview()).urlTemplate.replaceAll("{port}", String(port));
  }

  /** Public or not, the access token, and the URL template of the sandbox's ports. */
  async getPreview(): Promise<Preview> {
    return this.http.json("getPreview", { params: { id: this.id } });
  }

  /** Makes its ports public (served to anyone) or private, or rotates its token (revoking every signed URL). */
  async setPreview(change: SetPreviewRequest): Promise<Preview> {
    return this.http.json("setPreview", { params: { id: this.id }, json: change });
  }

  /** A URL that opens `port` in a browser until it expires (default 1 h), for a private sandbox. */
  async signUrl(port: number, expiresInS?: number): Promise<SignedPreviewUrl> {
    return this.http.json("signPreviewUrl", { params: { id: this.id }, json: { port, ...(expiresInS === undefined ? {} : { expiresInS }) } });
  }

  /**
   * A raw TCP connection to a port in the sandbox, for protocols that are not HTTP (a database, SSH):
   * through the daemon with the API key, woken first, kept awake while open. Throws PortClosedError when
   * nothing listens there.
   */
  async connectPort(port: number): Promise<Duplex> {
    return connectPort(this.http.connection, this.id, port);
  }

  /** Listens on a local port (default: any free one on 127.0.0.1) whose connections go to `port` in the sandbox. */
  async forwardPort(port: number, options: ForwardOptions = {}): Promise<PortForwarding> {
    return forwardPort(this.http.connection, this.id, port, options);
  }

  /** TCP ports a process listens on in the sandbox, each with its URL. */
  async ports(): Promise<PortList["ports"]> {
    return (await this.http.json("listPorts", { params: { id: this.id } })).ports;
  }

  /** What the sandbox uses now: CPU, memory, disk, and network bytes over its life. Does not wake it. */
  async getMetrics(): Promise<SandboxMetrics> {
    return this.http.json("getSandboxMetrics", { params: { id: this.id } });
  }

  /**
   * Changes what the sandbox may reach: `internet`, `allowOut`, `denyOut` (fields left out keep their value).
   * New connections follow the new policy at once; open ones are not cut.
   */
  async setNetwork(policy: NetworkPolicy): Promise<SandboxInfo> {
    this.latest = await this.http.json("setSandboxNetwork", { params: { id: this.id }, json: policy });
    return this.latest;
  }

  async kill(): Promise<void> {
    await this.http.empty("deleteSandbox", { params: { id: this.id } });
  }
}
