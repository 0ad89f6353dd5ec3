import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ResolvedConnection } from "./connection.js";
import { ConnectionError, type StasisError } from "./errors.js";
import { errorFromReplyText } from "./http.js";

/** The daemon's upgrade token for raw TCP (packages/daemon/src/http/port-forward.ts). */
const TCP_UPGRADE = "tcp";
/** An error reply is small; more is not read. */
const MAX_ERROR_BODY = 64 * 1024;

function readError(res: IncomingMessage): Promise<StasisError> {
  return new Promise((resolve) => {
    let text = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      if (text.length < MAX_ERROR_BODY) text += chunk;
    });
    const done = () => resolve(errorFromReplyText(text, res.statusCode ?? 502, "port-forward"));
    res.once("end", done);
    res.once("error", done);
  });
}

/**
 * A TCP connection to `port` inside the sandbox, through the daemon (an HTTP upgrade): its bytes are the
 * port's. The sandbox is woken first if it sleeps, and kept awake while the connection is open.
 */
export function connectPort(connection: ResolvedConnection, sandboxId: string, port: number): Promise<Duplex> {
  const url = new URL(`${connection.apiUrl}/v1/sandboxes/${encodeURIComponent(sandboxId)}/ports/${port}/connect`);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: "GET",
      headers: { connection: "Upgrade", upgrade: TCP_UPGRADE, ...(connection.apiKey ? { authorization: `Bearer ${connection.apiKey}` } : {}) },
    });
    req.once("upgrade", (_res, socket: Socket, head: Buffer) => {
      if (head.length > 0) socket.unshift(head);
      socket.setNoDelay(true);
      resolve(socket);
    });
    req.once("response", (res) => void readError(res).then(reject));
    req.once("error", (err) => reject(new ConnectionError({ code: "connection_failed", message: `port-forward to ${sandboxId}:${port} failed: ${err.message}`, status: null, retryable: true, cause: err })));
    req.end();
  });
}

export interface PortForwarding {
  /** The local address and port that forward to the sandbox's port. */
  host: string;
  port: number;
  /** Stops listening and closes the forwarded connections. */
  close(): Promise<void>;
}

export interface ForwardOptions {
  /** Local port; default 0 (any free one). */
  localPort?: number;
  /** Local address; default 127.0.0.1 (only this host). */
  host?: string;
  /** Called when one forwarded connection fails (e.g. nothing listens in the sandbox); it is closed. */
  onError?: (err: Error) => void;
}

/** Listens on a local port; each connection to it is a connection to `port` inside the sandbox. */
export async function forwardPort(connection: ResolvedConnection, sandboxId: string, port: number, options: ForwardOptions = {}): Promise<PortForwarding> {
  const open = new Set<Socket | Duplex>();
  const server: Server = createServer((local) => {
    open.add(local);
    local.once("close", () => open.delete(local));
    local.on("error", () => local.destroy());
    local.pause();
    connectPort(connection, sandboxId, port).then(
      (remote) => {
        open.add(remote);
        remote.once("close", () => {
          open.delete(remote);
          local.destroy();
        });
        remote.on("error", () => remote.destroy());
        local.once("close", () => remote.destroy());
        local.pipe(remote);
        remote.pipe(local);
        local.resume();
      },
      (err: Error) => {
        options.onError?.(err);
        local.destroy();
      },
    );
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.localPort ?? 0, host, () => resolve());
  });
  return {
    host,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
