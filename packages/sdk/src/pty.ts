import WebSocket from "ws";
import { ErrorResponseSchema, PTY_CLOSE_STANDBY, PtyServerMessageSchema, type CreatePtyRequest, type PtySize } from "@stasis/protocol";
import { ConnectionError, errorFromBody, protocolError, SandboxNotRunningError, type StasisError } from "./errors.js";
import type { HttpClient } from "./http.js";

export interface PtyOutput {
  /** The terminal's bytes as they arrive (a re-attach first gets recent output again). */
  onData?: (data: Uint8Array) => void;
}
export interface PtyConnectOptions extends PtyOutput {
  /** Send the terminal's recent output first (default true). */
  replay?: boolean;
}
export type PtyCreateOptions = Omit<CreatePtyRequest, "cmd"> & PtyOutput & { cmd?: string | string[] };
export interface PtyExit {
  exitCode: number;
  signal: string | null;
}

/**
 * `sandbox.pty`: interactive terminals. A terminal runs on until it exits or is killed: a handle that
 * disconnects (or loses its connection, or sees the sandbox hibernate) can `connect` again by pid.
 */
export class Pty {
  constructor(
    private readonly http: HttpClient,
    private readonly sandboxId: string,
  ) {}

  /** Starts a terminal (default: the login shell, 80x24) and attaches to it. */
  async create(options: PtyCreateOptions = {}): Promise<PtyHandle> {
    const { onData, ...request } = options;
    const { pid } = await this.http.json("createPty", { params: { id: this.sandboxId }, json: request });
    return this.connect(pid, { onData });
  }

  /** Attaches to a running terminal; its recent output is replayed first. */
  connect(pid: number, output: PtyConnectOptions = {}): Promise<PtyHandle> {
    const { apiUrl, apiKey } = this.http.connection;
    const url = `${apiUrl.replace(/^http/, "ws")}/v1/sandboxes/${encodeURIComponent(this.sandboxId)}/pty?pid=${pid}&replay=${output.replay ?? true}`;
    return PtyHandle.open(url, apiKey, pid, output, this);
  }

  /** Keystrokes, without a connection of one's own (at most 1 MiB a call). */
  async sendInput(pid: number, data: string | Uint8Array): Promise<void> {
    const raw = typeof data === "string" ? new TextEncoder().encode(data) : data;
    await this.http.empty("ptyInput", { params: { id: this.sandboxId, pid }, raw });
  }

  async resize(pid: number, size: PtySize): Promise<void> {
    await this.http.empty("resizePty", { params: { id: this.sandboxId, pid }, json: size });
  }

  /** Kills the terminal's process group (SIGKILL). */
  async kill(pid: number): Promise<void> {
    await this.http.empty("killProcess", { params: { id: this.sandboxId, pid } });
  }
}

/** One connection to a terminal. */
export class PtyHandle {
  private exit: PtyExit | null = null;
  private failure: StasisError | null = null;
  private readonly done: Promise<PtyExit>;

  private constructor(
    private readonly ws: WebSocket,
    readonly pid: number,
    private readonly pty: Pty,
    onData: ((data: Uint8Array) => void) | undefined,
  ) {
    this.done = new Promise<PtyExit>((resolve, reject) => {
      ws.on("message", (data, isBinary) => {
        const bytes = toBytes(data);
        if (isBinary) return onData?.(bytes);
        const parsed = PtyServerMessageSchema.safeParse(safeJson(bytes));
        if (!parsed.success) return;
        const m = parsed.data;
        if (m.type === "exit") this.exit = { exitCode: m.exitCode, signal: m.signal };
        else if (m.type === "error") this.failure = errorFromBody(m.error);
      });
      ws.on("close", (code, reason) => {
        if (this.exit) return resolve(this.exit);
        if (code === PTY_CLOSE_STANDBY) {
          return reject(new SandboxNotRunningError({ code: "sandbox_not_running", message: `the sandbox hibernated; connect to terminal ${pid} again to wake it`, status: null, retryable: true }));
        }
        reject(this.failure ?? new ConnectionError({ code: "connection_failed", message: `terminal ${pid}: connection closed (${code} ${reason.toString()})`, status: null, retryable: true }));
      });
    });
    // wait() may never be called (a handle used for input only): no unhandled rejection.
    this.done.catch(() => {});
  }

  static open(url: string, apiKey: string | undefined, pid: number, output: PtyOutput, pty: Pty): Promise<PtyHandle> {
    const ws = new WebSocket(url, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      let handle: PtyHandle | null = null;
      ws.on("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const parsed = ErrorResponseSchema.safeParse(safeJson(Buffer.concat(chunks)));
          reject(parsed.success ? errorFromBody(parsed.data.error, res.statusCode ?? 500) : protocolError(`terminal connect failed with HTTP ${res.statusCode}`, res.statusCode ?? null));
        });
      });
      ws.on("error", (err) => {
        if (!handle) reject(new ConnectionError({ code: "connection_failed", message: `terminal connect failed: ${err.message}`, status: null, retryable: true, cause: err }));
      });
      ws.on("open", () => {
        handle = new PtyHandle(ws, pid, pty, output.onData);
        resolve(handle);
      });
    });
  }

  /** Sends keystrokes (bytes, or a string as UTF-8), in order. */
  sendInput(data: string | Uint8Array): void {
    this.ws.send(typeof data === "string" ? Buffer.from(data, "utf8") : data, { binary: true });
  }

  /** Sets the terminal's size; its programs get SIGWINCH. */
  resize(size: PtySize): void {
    this.ws.send(JSON.stringify({ type: "resize", cols: size.cols, rows: size.rows }));
  }

  /** Resolves with the exit status once the terminal's process exits; rejects when the connection ends first. */
  wait(): Promise<PtyExit> {
    return this.done;
  }

  /** Leaves the terminal running; `sandbox.pty.connect(pid)` re-attaches. */
  disconnect(): void {
    this.ws.close(1000, "detached");
  }

  async kill(): Promise<void> {
    await this.pty.kill(this.pid);
  }
}

function toBytes(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function safeJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
}
