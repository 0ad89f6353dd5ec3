import { connect, type Socket } from "node:net";
import type { Readable } from "node:stream";
import { ResponseReader, type ResponseHead } from "./response-reader.js";

/** Each connection reads into one buffer of its own, reused for every read (no garbage per read). */
const READ_BUFFER_BYTES = 64 * 1024;
/** Idle connections close after 4 s, before Node servers' default 5 s keep-alive timeout closes them under a request. */
const IDLE_TIMEOUT_MS = 4_000;
/**
 * Idle connections kept per sandbox port (Node's own Agent keeps 256 free sockets per host) and in all: a
 * burst of clients otherwise reopens most of its connections into the sandbox's network stack for every
 * request (8 per port: ~1,000-2,000 new connections per 4,000 requests from 200 clients, ~2,000 requests/s;
 * 256: none after the first burst, ~3,000/s). Each holds its 64 KiB read buffer: 512 in all is 32 MiB.
 */
export const DEFAULT_POOL_LIMITS = { perTarget: 256, total: 512 };

export interface UpstreamRequest {
  address: string;
  port: number;
  method: string;
  /** The request target as the client sent it (already checked by the daemon's own HTTP parser). */
  path: string;
  /** [name, value, ...], hop-by-hop headers already taken out. */
  headers: [string, string][];
  /** The request's body (decoded by the daemon's server), or none: a request without one may use a kept-alive connection. */
  body?: { stream: Readable; length: number | null };
}

/** Where a response goes. `body` gets a view valid only during the call. */
export interface ResponseSink {
  head(head: ResponseHead): void;
  /** Returns true when the view has been handed on in full; false: reading waits for `flushed`. */
  body(view: Buffer, flushed: () => void): boolean;
  end(): void;
  /** A failure; `headSent`: the head had been passed on, so only a cut is left to tell the client. */
  fail(err: Error, headSent: boolean): void;
}

export interface PoolHooks {
  /** A connection back in the pool, idle. */
  onIdle(socket: Socket): void;
}

export interface PoolLimits {
  /** Idle connections kept per address and port. */
  perTarget: number;
  /** Idle connections kept in all; a connection finishing beyond either is closed. */
  total: number;
}

interface Connection {
  socket: Socket;
  /** The exchange reading from this connection now; null while idle. */
  reader: ((bytes: Buffer) => boolean) | null;
  closed: boolean;
  onClose: ((err: Error | null) => void) | null;
}

/**
 * A small HTTP/1.1 client for requests into sandboxes: a pool of kept-alive connections for requests
 * without a body, one connection each for those with one, and bodies passed on as views of a reused read
 * buffer with backpressure (a read waits until the client's socket took the previous one).
 */
export class UpstreamClient {
  private readonly idle = new Map<string, Connection[]>();
  /** Connections in `idle`, all targets together. */
  private idleCount = 0;

  constructor(
    private readonly hooks: PoolHooks,
    private readonly limits: PoolLimits = DEFAULT_POOL_LIMITS,
  ) {}

  /**
   * Sends the request and passes the response to the sink; returns a function that abandons it.
   * `onSocket` is told of each connection that carries it (a new or kept-alive one; a second on a retry).
   */
  exchange(request: UpstreamRequest, sink: ResponseSink, onSocket: (socket: Socket) => void): () => void {
    let abandoned = false;
    let current: Connection | null = null;
    const attempt = (retry: boolean): void => {
      const pooled = request.body === undefined;
      const reused = pooled ? this.takeIdle(request) : null;
      const conn = reused ?? this.open(request);
      current = conn;
      onSocket(conn.socket);
      let headSent = false;
      let gotBytes = false;
      // Body writes not yet taken by the client's socket (they complete in order): the latest one's number.
      let seq = 0;
      let pending = 0;
      // A finished exchange whose last piece is still being written: its connection (and read buffer) waits.
      let afterFlush: (() => void) | null = null;
      const reader = new ResponseReader(request.method, {
        head: (head) => {
          headSent = true;
          sink.head(head);
        },
        body: (view) => {
          const mine = ++seq;
          const before = pending;
          pending = mine;
          const flushed = () => {
            if (pending !== mine) return;
            pending = 0;
            if (!conn.closed) conn.socket.resume();
            afterFlush?.();
            afterFlush = null;
          };
          if (sink.body(view, flushed) && pending === mine) pending = before;
        },
        end: (reusable) => {
          conn.reader = null;
          conn.onClose = null;
          const release = () => {
            current = null;
            if (pooled && reusable && !abandoned) this.putIdle(request, conn);
            else conn.socket.destroy();
          };
          // Back to the pool only once the client's socket has taken the last piece: the next response on
          // this connection is read into the same buffer. Abandoned before that, the connection is closed.
          if (pending === 0) release();
          else afterFlush = release;
          sink.end();
        },
      });
      const failed = (err: Error) => {
        conn.reader = null;
        conn.onClose = null;
        conn.socket.destroy();
        current = null;
        if (abandoned) return;
        // A kept-alive connection the server had just closed: the request never reached it; once more on a new one.
        if (reused && !retry && !gotBytes) return attempt(true);
        sink.fail(err, headSent);
      };
      conn.reader = (bytes) => {
        gotBytes = true;
        try {
          reader.push(bytes);
        } catch (err) {
          failed(err as Error);
          return false;
        }
        // Paused until the client's socket has taken what was handed on: the buffer is then free again.
        return pending === 0;
      };
      conn.onClose = (err) => {
        if (err) return failed(err);
        try {
          reader.eof();
        } catch (e) {
          failed(e as Error);
        }
      };
      this.send(conn, request);
    };
    attempt(false);
    return () => {
      abandoned = true;
      if (current) {
        current.reader = null;
        current.onClose = null;
        current.socket.destroy();
        current = null;
      }
    };
  }

  /** Closes every idle connection (the daemon's shutdown). */
  close(): void {
    for (const list of this.idle.values()) for (const conn of list) conn.socket.destroy();
    this.idle.clear();
    this.idleCount = 0;
  }

  private open(request: UpstreamRequest): Connection {
    const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const conn: Connection = { socket: undefined as unknown as Socket, reader: null, closed: false, onClose: null };
    conn.socket = connect({
      host: request.address,
      port: request.port,
      noDelay: true,
      onread: {
        buffer,
        // Bytes on an idle connection (a server that answers nothing was asked) end it.
        callback: (n: number, buf: Uint8Array) => (conn.reader ? conn.reader(Buffer.from(buf.buffer, buf.byteOffset, n)) : (conn.socket.destroy(), false)),
      },
    });
    let error: Error | null = null;
    conn.socket.on("error", (err) => (error = err));
    conn.socket.on("timeout", () => {
      if (!conn.reader) conn.socket.destroy();
    });
    conn.socket.once("close", () => {
      conn.closed = true;
      this.dropIdle(request, conn);
      conn.onClose?.(error);
    });
    return conn;
  }

  private send(conn: Connection, request: UpstreamRequest): void {
    const body = request.body;
    const framing: [string, string][] = body === undefined ? [] : body.length !== null ? [["content-length", String(body.length)]] : [["transfer-encoding", "chunked"]];
    const lines = [`${request.method} ${request.path} HTTP/1.1`, ...request.headers.map(([k, v]) => `${k}: ${v}`), ...framing.map(([k, v]) => `${k}: ${v}`)];
    // A request with a body has its connection to itself, closed after the response.
    if (body !== undefined) lines.push("connection: close");
    conn.socket.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (body === undefined) return;
    if (body.length !== null) {
      body.stream.pipe(conn.socket, { end: false });
      return;
    }
    body.stream.on("data", (chunk: Buffer) => {
      if (conn.closed || chunk.length === 0) return;
      conn.socket.cork();
      conn.socket.write(`${chunk.length.toString(16)}\r\n`);
      conn.socket.write(chunk);
      const room = conn.socket.write("\r\n");
      conn.socket.uncork();
      if (!room) {
        body.stream.pause();
        conn.socket.once("drain", () => body.stream.resume());
      }
    });
    body.stream.once("end", () => {
      if (!conn.closed) conn.socket.write("0\r\n\r\n");
    });
  }

  private key(request: UpstreamRequest): string {
    return `${request.address}:${request.port}`;
  }

  private takeIdle(request: UpstreamRequest): Connection | null {
    const list = this.idle.get(this.key(request));
    for (let conn = list?.pop(); conn; conn = list?.pop()) {
      this.idleCount--;
      if (conn.closed || conn.socket.destroyed) continue;
      conn.socket.setTimeout(0);
      return conn;
    }
    return null;
  }

  private putIdle(request: UpstreamRequest, conn: Connection): void {
    const key = this.key(request);
    const list = this.idle.get(key) ?? [];
    if (conn.closed || list.length >= this.limits.perTarget || this.idleCount >= this.limits.total) return void conn.socket.destroy();
    list.push(conn);
    this.idleCount++;
    this.idle.set(key, list);
    conn.socket.setTimeout(IDLE_TIMEOUT_MS);
    this.hooks.onIdle(conn.socket);
  }

  private dropIdle(request: UpstreamRequest, conn: Connection): void {
    const key = this.key(request);
    const list = this.idle.get(key);
    if (!list) return;
    const i = list.indexOf(conn);
    if (i >= 0) {
      list.splice(i, 1);
      this.idleCount--;
    }
    if (list.length === 0) this.idle.delete(key);
  }
}

