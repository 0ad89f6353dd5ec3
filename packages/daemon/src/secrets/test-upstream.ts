import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { join } from "node:path";
import type { ConnectionInterceptor, SandboxOnNetwork } from "../network/types.js";

// For the interceptor's tests: a "real host" with its own CA (made with openssl), and a stand-in for the
// egress proxy that reads a connection's first bytes and offers it to the interceptor, or splices it.

export interface TestCerts {
  caPem: string;
  keyPem: string;
  certPem: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

/** A test CA and a leaf for `host` signed by it (`selfSigned`: a leaf no CA vouches for). */
export function makeTestCerts(dir: string, host: string, selfSigned = false): TestCerts {
  writeFileSync(join(dir, "ext.cnf"), `[req]\ndistinguished_name = dn\n[dn]\n[leaf]\nsubjectAltName = DNS:${host}\nbasicConstraints = CA:FALSE\n[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign\n`);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(dir, ["req", "-x509", "-new", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=Test Upstream CA", "-config", "ext.cnf", "-extensions", "ca"]);
  if (selfSigned) {
    openssl(dir, ["req", "-x509", "-new", ...ec, "-keyout", "leaf.key", "-out", "leaf.crt", "-days", "2", "-subj", `/CN=${host}`, "-config", "ext.cnf", "-extensions", "leaf"]);
  } else {
    openssl(dir, ["req", "-new", ...ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", `/CN=${host}`, "-config", "ext.cnf"]);
    openssl(dir, ["x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "7", "-days", "2", "-extfile", "ext.cnf", "-extensions", "leaf", "-out", "leaf.crt"]);
  }
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  return { caPem: read("ca.crt"), keyPem: read("leaf.key"), certPem: read("leaf.crt") };
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export interface TestUpstream {
  port: number;
  seen: SeenRequest[];
  /** Connections accepted (TLS: handshakes completed). */
  connections: number;
  close(): Promise<void>;
}

/**
 * A host that records each request and answers with its body back, an `x-echo-authorization` header, and on
 * an Upgrade, a 101 and an echo of the bytes that follow.
 */
export async function startUpstream(certs?: TestCerts): Promise<TestUpstream> {
  const seen: SeenRequest[] = [];
  const state = { connections: 0 };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      res.writeHead(200, { "content-type": "application/octet-stream", "x-echo-authorization": req.headers.authorization ?? "" });
      res.end(body);
    });
  };
  const server: Server = certs ? createHttpsServer({ key: certs.keyPem, cert: certs.certPem }, handler) : createHttpServer(handler);
  server.on(certs ? "secureConnection" : "connection", () => state.connections++);
  server.on("upgrade", (req: IncomingMessage, socket: Socket) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.alloc(0) });
    socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TestProxy {
  port: number;
  /** What the interceptor answered, per connection. */
  taken: boolean[];
  close(): Promise<void>;
}

/** The egress proxy's part: each connection's first bytes read, then offered to the interceptor for `host`, else spliced to the upstream. */
export async function startProxy(interceptor: ConnectionInterceptor, target: { sandbox: SandboxOnNetwork; host: string; port: number; tls: boolean }): Promise<TestProxy> {
  const taken: boolean[] = [];
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    sockets.add(client);
    client.once("close", () => sockets.delete(client));
    client.once("data", (head: Buffer) => {
      client.pause();
      const took = interceptor({ ...target, address: "127.0.0.1", client, head });
      taken.push(took);
      if (took) return;
      const up = connect(target.port, "127.0.0.1");
      sockets.add(up);
      up.write(head);
      client.pipe(up).pipe(client);
      client.on("error", () => up.destroy());
      up.on("error", () => client.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    taken,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
