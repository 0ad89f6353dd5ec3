import { Agent as HttpAgent, createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { ConnectionInterceptor, InterceptContext } from "../network/types.js";
import type { CertificateAuthority } from "./certificate-authority.js";
import { headerRulesFor, normalizeHost } from "./placeholders.js";
import type { SecretSource, SecretUse } from "./secret-store.js";
import { forwardRequest, forwardUpgrade, secretsFor, sendText, type Intercepted } from "./upstream.js";

export interface SecretInterceptorOptions {
  /** Secrets' hosts (read per connection) and values (read per request, so a change applies to the next one). */
  store: SecretSource;
  /** Mints the certificate the sandbox sees for a secret host it reaches over TLS. */
  ca: Pick<CertificateAuthority, "leafFor">;
  /** Called once per secret put into a request (sandbox, secret, host, time; never the value). */
  audit: (use: SecretUse) => void;
  logger: Logger;
  /** CA certificates (PEM) to verify upstream hosts with instead of Node's bundled roots (tests). */
  upstreamCa?: string | string[];
  /** How long an intercepted connection may sit idle, in ms (default 5 minutes). */
  idleTimeoutMs?: number;
}

/**
 * The egress proxy's interceptor for secrets: it takes over a connection (already allowed by the policy) when
 * the sandbox holds a placeholder for a secret one of whose hosts is the connection's host, and leaves every
 * other connection to the proxy. It terminates TLS with a leaf of the daemon's CA, serves HTTP/1.1 on the
 * plaintext and sends each request on to `address:port`, over TLS verified against the host name when the
 * sandbox spoke TLS, with the placeholders in header values replaced by the secrets' values. Bodies are
 * streamed untouched both ways; connections are kept alive on both sides.
 */
export function createSecretInterceptor(options: SecretInterceptorOptions): ConnectionInterceptor {
  const { store, logger } = options;
  const connections = new WeakMap<Socket, Intercepted>();
  const server = createHttpServer(connections, options);

  return function interceptSecrets(ctx: InterceptContext): boolean {
    let names: string[];
    try {
      names = secretsFor(store, ctx.sandbox, ctx.host).map((s) => s.name);
    } catch (err) {
      logger.error({ err, sandbox: ctx.sandbox.id, host: ctx.host }, "secret lookup failed: the connection goes out without injection");
      return false;
    }
    const rules = headerRulesFor(ctx.sandbox.headerRules, ctx.host);
    if (names.length === 0 && Object.keys(rules).length === 0) return false;
    const log = logger.child({ sandbox: ctx.sandbox.id, host: ctx.host, port: ctx.port });
    const Agent = ctx.tls ? HttpsAgent : HttpAgent;
    // One upstream connection per sandbox connection, reused across its requests, closed with it.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const conn: Intercepted = { sandbox: ctx.sandbox, host: normalizeHost(ctx.host), port: ctx.port, address: ctx.address, tls: ctx.tls, agent, upstreamCa: options.upstreamCa, log };
    const client = ctx.client;
    client.on("error", (err) => log.debug({ err }, "sandbox connection error"));
    client.once("close", () => agent.destroy());
    client.setTimeout(options.idleTimeoutMs ?? 5 * 60_000, () => client.destroy());
    // Small writes (a TLS record, a header block) must not wait for a delayed ACK (~40 ms).
    client.setNoDelay(true);
    // The proxy already read the head; put it back in front of whatever comes next.
    client.pause();
    client.unshift(ctx.head);
    log.debug({ secrets: names, headerRules: Object.keys(rules), tls: ctx.tls }, "intercepting a connection to a secret or header-rule host");
    if (!ctx.tls) {
      connections.set(client, conn);
      server.emit("connection", client);
      // The server reads through a 'data' listener, which does not restart a stream paused by hand.
      client.resume();
      return true;
    }
    options.ca.leafFor(conn.host).then(
      (leaf) => {
        if (client.destroyed) return;
        const tls = new TLSSocket(client, { isServer: true, secureContext: leaf.context, ALPNProtocols: ["http/1.1"] });
        tls.on("error", (err) => {
          log.debug({ err }, "TLS with the sandbox failed (does it trust the daemon's CA?)");
          client.destroy();
        });
        connections.set(tls, conn);
        server.emit("connection", tls);
      },
      (err: unknown) => {
        log.error({ err }, "no certificate for the host: connection closed");
        client.destroy();
      },
    );
    return true;
  };
}

/** One HTTP server, never listening, fed the intercepted connections (plaintext, or the TLS sockets over them). */
function createHttpServer(connections: WeakMap<Socket, Intercepted>, options: SecretInterceptorOptions): Server {
  const server = createServer({ requestTimeout: 0, maxHeaderSize: 64 * 1024 }, (req: IncomingMessage, res: ServerResponse) => {
    const conn = connections.get(req.socket);
    if (!conn) {
      req.socket.destroy();
      return;
    }
    forwardRequest(req, res, conn, options);
  });
  server.keepAliveTimeout = 30_000;
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const conn = connections.get(socket);
    if (!conn) {
      socket.destroy();
      return;
    }
    forwardUpgrade(req, socket, head, conn, options);
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    connections.get(socket)?.log.debug({ err }, "malformed request from the sandbox");
    if (socket.writable && err.code !== "ECONNRESET") sendText(socket, 400, "stasis egress: malformed HTTP request\n");
    socket.destroy();
  });
  return server;
}
