import { request as httpRequest, STATUS_CODES, type Agent, type ClientRequest, type IncomingMessage, type RequestOptions, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { SandboxOnNetwork } from "../network/types.js";
import { dropHopByHop, headerRulesFor, hostMatches, normalizeHost, replaceInHeaders, scrubHeaders, setHeaders, type Replacement } from "./placeholders.js";
import type { SecretInterceptorOptions } from "./secret-injector.js";
import type { SecretSource } from "./secret-store.js";

/** One intercepted connection: where its requests go and the upstream connection they reuse. */
export interface Intercepted {
  sandbox: SandboxOnNetwork;
  host: string;
  port: number;
  address: string;
  tls: boolean;
  agent: Agent;
  upstreamCa: string | string[] | undefined;
  log: Logger;
}

/** The secrets of `sandbox` that may go to `host` (no value read). */
export function secretsFor(store: SecretSource, sandbox: SandboxOnNetwork, host: string): { name: string; placeholder: string }[] {
  const out: { name: string; placeholder: string }[] = [];
  for (const [name, placeholder] of Object.entries(sandbox.placeholders)) {
    const hosts = store.hostsOf(name);
    if (hosts && hostMatches(hosts, host)) out.push({ name, placeholder });
  }
  return out;
}

/** The replacements for one request; throws the store's SecretsKeyError when a value cannot be decrypted. */
export function replacementsFor(store: SecretSource, conn: Intercepted): Replacement[] {
  const out: Replacement[] = [];
  for (const { name, placeholder } of secretsFor(store, conn.sandbox, conn.host)) {
    const secret = store.reveal(name);
    if (secret && hostMatches(secret.hosts, conn.host)) out.push({ name, placeholder, value: secret.value });
  }
  return out;
}

/** Errors of certificate verification (Node's and OpenSSL's codes), told apart from a host that is down. */
const CERTIFICATE_ERROR = /CERT|SIGNATURE|ALTNAME|ISSUER|SELF_SIGNED|CHAIN/;

/** A plain-text reply written straight on a socket (before or instead of an HTTP exchange), then closed. */
export function sendText(socket: Duplex, status: number, text: string): void {
  const body = Buffer.from(text);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${text}`);
}

function replyText(req: IncomingMessage, res: ServerResponse, status: number, text: string): void {
  // A request whose body was not all read leaves the rest on the connection: it cannot carry another one.
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text), ...(req.complete ? {} : { connection: "close" }) });
  res.end(text);
}

/**
 * What one request needs before it goes out: refused with a reply (wrong host, undecryptable secret) or the
 * headers to send (placeholders replaced) with the secrets they carry.
 */
function prepare(req: IncomingMessage, conn: Intercepted, options: SecretInterceptorOptions, keepUpgrade: boolean): { refuse: [number, string] } | { headers: string[]; used: string[]; replacements: Replacement[] } {
  const given = req.headers.host;
  // The connection was allowed, and its address resolved, for one name: a request naming another is not sent.
  if (given !== undefined && normalizeHost(given) !== conn.host) return { refuse: [421, `stasis egress: this connection is for ${conn.host}; open a new one for ${normalizeHost(given)}\n`] };
  let replacements: Replacement[];
  try {
    replacements = replacementsFor(options.store, conn);
  } catch (err) {
    conn.log.error({ err }, "a secret for this host cannot be decrypted: request not sent");
    return { refuse: [502, `stasis egress: the secrets for ${conn.host} cannot be used on this daemon (see its log); the request was not sent\n`] };
  }
  const replaced = replaceInHeaders(dropHopByHop(req.rawHeaders, keepUpgrade), replacements);
  const used = replaced.used;
  // The sandbox's header rules for this host (E2B's transforms) override what the sandbox sent.
  const headers = setHeaders(replaced.headers, headerRulesFor(conn.sandbox.headerRules, conn.host));
  const elsewhere = Object.entries(conn.sandbox.placeholders).filter(([name, placeholder]) => !used.includes(name) && headers.some((h, i) => i % 2 === 1 && h.includes(placeholder)));
  if (elsewhere.length > 0) conn.log.warn({ secrets: elsewhere.map(([name]) => name) }, "placeholder sent to a host that is not its secret's: sent as it is");
  if (given === undefined) headers.push("Host", conn.port === (conn.tls ? 443 : 80) ? conn.host : `${conn.host}:${conn.port}`);
  return { headers, used, replacements };
}

function upstreamRequest(conn: Intercepted, req: IncomingMessage, headers: string[], agent: RequestOptions["agent"]): ClientRequest {
  const options: RequestOptions & { servername?: string; ca?: string | string[] } = { host: conn.address, port: conn.port, method: req.method, path: req.url, headers, agent, setHost: false };
  if (!conn.tls) return httpRequest(options);
  // Verified against the name the sandbox asked for, never the address: servername is what Node checks.
  options.servername = conn.host;
  if (conn.upstreamCa !== undefined) options.ca = conn.upstreamCa;
  return httpsRequest(options);
}

/** Records the uses once the request's connection is up (for TLS: the host's certificate verified), so a refused one records none. */
function auditOnConnect(upstream: ClientRequest, conn: Intercepted, used: string[], options: SecretInterceptorOptions): void {
  if (used.length === 0) return;
  const record = () => {
    for (const secret of used) options.audit({ sandboxId: conn.sandbox.id, secret, host: conn.host });
    conn.log.debug({ secrets: used }, "secret injected");
  };
  upstream.once("socket", (socket) => {
    const ready = conn.tls ? (socket as TLSSocket).authorized : !socket.connecting;
    if (upstream.reusedSocket || ready) record();
    else socket.once(conn.tls ? "secureConnect" : "connect", record);
  });
}

function failureText(conn: Intercepted, err: NodeJS.ErrnoException): string {
  const code = err.code ?? "error";
  if (CERTIFICATE_ERROR.test(code)) return `stasis egress: the TLS certificate of ${conn.host} failed verification (${code}); the request was not sent\n`;
  return `stasis egress: cannot reach ${conn.host} (${conn.address}:${conn.port}): ${code}\n`;
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");
}

/** Sends one request on, streaming its body, and streams the reply back; retried once on a stale kept-alive connection when it has no body. */
export function forwardRequest(req: IncomingMessage, res: ServerResponse, conn: Intercepted, options: SecretInterceptorOptions): void {
  const prepared = prepare(req, conn, options, false);
  if ("refuse" in prepared) return replyText(req, res, ...prepared.refuse);
  const { headers, used, replacements } = prepared;
  const withBody = hasBody(req);

  const send = (attempt: number): void => {
    let upstream: ClientRequest;
    try {
      upstream = upstreamRequest(conn, req, headers, conn.agent);
    } catch (err) {
      // Node refuses a header it could not send as it is (a character outside latin1, say): say so, do not throw.
      conn.log.warn({ err: (err as Error).message }, "request not sendable");
      return replyText(req, res, 502, `stasis egress: the request to ${conn.host} cannot be sent: ${(err as NodeJS.ErrnoException).code ?? "invalid"} header\n`);
    }
    auditOnConnect(upstream, conn, used, options);
    let responded = false;
    let clientGone = false;
    const abandon = () => {
      if (res.writableFinished) return;
      clientGone = true;
      upstream.destroy();
    };
    res.once("close", abandon);
    upstream.once("response", (up) => {
      responded = true;
      try {
        res.writeHead(up.statusCode ?? 502, up.statusMessage, scrubHeaders(dropHopByHop(up.rawHeaders), replacements));
      } catch (err) {
        conn.log.warn({ err: (err as Error).message }, "reply not passable to the sandbox");
        up.destroy();
        replyText(req, res, 502, `stasis egress: the reply of ${conn.host} cannot be passed on\n`);
        return;
      }
      up.pipe(res);
      up.once("error", () => res.destroy());
    });
    upstream.once("error", (err: NodeJS.ErrnoException) => {
      res.off("close", abandon);
      if (clientGone) return;
      if (!responded && attempt === 0 && !withBody && upstream.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE")) return send(1);
      req.unpipe(upstream);
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      const text = failureText(conn, err);
      conn.log.warn({ code: err.code, err: err.message }, text.trim());
      replyText(req, res, 502, text);
    });
    if (withBody) req.pipe(upstream);
    else upstream.end();
  };
  req.once("error", () => res.destroy());
  send(0);
}

/** A WebSocket (or other Upgrade) handshake: the same injection, then the two sockets are joined. */
export function forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, conn: Intercepted, options: SecretInterceptorOptions): void {
  const prepared = prepare(req, conn, options, true);
  if ("refuse" in prepared) return sendText(socket, ...prepared.refuse);
  const { headers, used, replacements } = prepared;
  // An upgraded connection leaves the pool: a fresh one, not the kept-alive one.
  let upstream: ClientRequest;
  try {
    upstream = upstreamRequest(conn, req, headers, false);
  } catch (err) {
    conn.log.warn({ err: (err as Error).message }, "request not sendable");
    return sendText(socket, 502, `stasis egress: the request to ${conn.host} cannot be sent\n`);
  }
  auditOnConnect(upstream, conn, used, options);
  const statusLine = (up: IncomingMessage, keepUpgrade: boolean) => {
    const raw = scrubHeaders(dropHopByHop(up.rawHeaders, keepUpgrade), replacements);
    let text = `HTTP/1.1 ${up.statusCode ?? 502} ${up.statusMessage ?? ""}\r\n`;
    for (let i = 0; i + 1 < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
    return `${text}\r\n`;
  };
  upstream.once("upgrade", (up, upSocket, upHead) => {
    socket.write(statusLine(up, true));
    if (upHead.length > 0) socket.write(upHead);
    if (head.length > 0) upSocket.write(head);
    upSocket.on("error", () => socket.destroy());
    socket.on("error", () => upSocket.destroy());
    upSocket.once("close", () => socket.destroy());
    socket.once("close", () => upSocket.destroy());
    upSocket.pipe(socket);
    socket.pipe(upSocket);
  });
  upstream.once("response", (up) => {
    // The host refused the upgrade: pass its answer on, then close.
    socket.write(statusLine(up, false).replace(/\r\n\r\n$/, "\r\nconnection: close\r\n\r\n"));
    up.pipe(socket);
  });
  upstream.once("error", (err: NodeJS.ErrnoException) => {
    const text = failureText(conn, err);
    conn.log.warn({ code: err.code, err: err.message }, text.trim());
    sendText(socket, 502, text);
  });
  socket.once("close", () => upstream.destroy());
  upstream.end();
}
