import { createServer, type IncomingMessage, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { TlsConfig } from "../config/tls-config.js";
import { TlsCertificates } from "./tls-certificates.js";

export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface DaemonListeners {
  port: number;
  /** The HTTPS port, or null when no certificates are configured. */
  httpsPort: number | null;
  certificates: TlsCertificates | null;
  close(): Promise<void>;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/**
 * The daemon's listeners: HTTP, and HTTPS beside it when certificates are given, both serving the same
 * requests (the API, preview hosts, custom domains) and upgrades.
 */
export async function startListeners(options: { host: string; port: number; tls: TlsConfig | null; onRequest: RequestListener; onUpgrade: UpgradeListener; log: Logger }): Promise<DaemonListeners> {
  const servers: Server[] = [];
  const plain = createServer(options.onRequest);
  plain.on("upgrade", options.onUpgrade);
  servers.push(plain);
  const port = await listen(plain, options.port, options.host);
  let httpsPort: number | null = null;
  let certificates: TlsCertificates | null = null;
  if (options.tls) {
    const certs = new TlsCertificates(options.tls, options.log.child({ component: "tls" }));
    certificates = certs;
    // Clients that send no server name (by address) get the default pair, kept current on renewals.
    let fallback = certs.defaultPem();
    const secure = createHttpsServer(
      {
        ...(fallback ?? {}),
        SNICallback: (servername, done) => done(null, certs.contextFor(servername) ?? undefined),
      },
      options.onRequest,
    );
    secure.on("secureConnection", () => {
      const now = certs.defaultPem();
      if (now && now !== fallback) secure.setSecureContext((fallback = now));
    });
    secure.on("upgrade", options.onUpgrade);
    secure.on("tlsClientError", (err) => options.log.debug({ err: err.message }, "TLS handshake failed"));
    servers.push(secure);
    httpsPort = await listen(secure, options.tls.port, options.host);
  }
  return {
    port,
    httpsPort,
    certificates,
    close: () =>
      Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              // Streams in flight would hold close() open; sandboxes keep running and are reattached on restart.
              server.closeAllConnections();
            }),
        ),
      ).then(() => undefined),
  };
}
