import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { connect, createServer, type AddressInfo, type Server } from "node:net";
import { Writable } from "node:stream";
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions, type Server as TlsServer } from "node:tls";
import pino, { type Logger } from "pino";

/** A pino logger whose lines a test can read. */
export function memoryLogger(): { logger: Logger; text: () => string } {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw.push(chunk.toString());
      cb();
    },
  });
  return { logger: pino({ level: "info" }, stream), text: () => raw.join("") };
}

export const logLines = (text: string): Record<string, unknown>[] => text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

export async function listen<S extends Server | HttpServer | TlsServer>(server: S, host: string, port = 0): Promise<S & { port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}

/** An HTTP server answering `<name> saw host=<Host> body=<length>`, counting requests. */
export function namedHttpServer(name: string): HttpServer & { requests: number; port: number } {
  const server = createHttpServer((req, res) => {
    server.requests++;
    let length = 0;
    req.on("data", (c: Buffer) => (length += c.length));
    req.on("end", () => res.end(`${name} saw host=${req.headers.host ?? ""} body=${length}`));
  }) as HttpServer & { requests: number; port: number };
  server.requests = 0;
  server.port = 0;
  return server;
}

/** A TLS server that echoes what it gets, prefixed once by `<name>:<servername>|`, counting connections. */
export function echoTlsServer(name: string, cert: { key: string; cert: string }): TlsServer & { connections: number; port: number } {
  const server = createTlsServer({ ...cert }, (socket) => {
    server.connections++;
    socket.on("error", () => undefined);
    socket.write(`${name}:${(socket as unknown as { servername?: string | false }).servername || "-"}|`);
    socket.pipe(socket);
  }) as TlsServer & { connections: number; port: number };
  server.connections = 0;
  server.port = 0;
  return server;
}

/** Writes `request` to 127.0.0.1:port and reads until the server closes. */
export function rawExchange(port: number, request: string | Buffer, options: { end?: boolean } = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
    // Like curl: once the server is done, so is the client.
    socket.on("end", () => socket.end());
    socket.write(request);
    if (options.end === true) socket.end();
  });
}

/** A TLS exchange through the proxy: sends `payload`, reads `expect` bytes back, then closes. Rejects if closed first. */
export function tlsExchange(port: number, options: ConnectionOptions, payload: Buffer, expect: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ...options });
    const chunks: Buffer[] = [];
    let got = 0;
    socket.on("secureConnect", () => socket.write(payload));
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= expect) {
        socket.end();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.on("error", (err) => reject(err));
    socket.on("close", () => reject(new Error("closed")));
  });
}

/** Opens a connection and resolves once it is open, keeping it idle. */
export function idleConnection(port: number): Promise<ReturnType<typeof connect> & { gone: Promise<void> }> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.on("error", () => undefined);
    const gone = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("connect", () => resolve(Object.assign(socket, { gone })));
  });
}

/** A plain TCP server for half-close: reads until the client's FIN, then answers with how much it got. */
export function halfCloseServer(): Server {
  return createServer({ allowHalfOpen: true }, (socket) => {
    let length = 0;
    socket.on("data", (c: Buffer) => (length += c.length));
    socket.on("end", () => socket.end(`HTTP/1.0 200 OK\r\n\r\ngot ${length} bytes after FIN`));
    socket.on("error", () => undefined);
  });
}
