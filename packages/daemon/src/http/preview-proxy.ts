import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { ApiError } from "../errors/api-error.js";
import type { PreviewService, PreviewTarget } from "../services/preview-service.js";
import { UpstreamClient } from "./upstream/upstream-client.js";

/** E2B's own port (envd): served by the daemon's E2B surface, never forwarded. */
const ENVD_PORT = 49983;
const TOKEN_HEADER = "x-stasis-preview-token";
/** E2B's header for private sandbox traffic (allowPublicTraffic: false): the same token. */
const E2B_TOKEN_HEADER = "e2b-traffic-access-token";
const COOKIE = "stasis_preview";
const SIGNED_PARAM = "stasis_preview";

export interface PreviewRoute {
  sandboxId: string;
  port: number;
}

/**
 * Whether a request is for a sandbox's port rather than the daemon's API: by host name
 * (`<port>-<sandboxId>.<domain>`) or by E2B's headers (`E2b-Sandbox-Id` and `E2b-Sandbox-Port`, any port but
 * envd's). A request that is one is never seen by the API, whatever its path.
 */
export function previewRouteOf(headers: IncomingHttpHeaders, domain: string): PreviewRoute | null {
  const host = (headers.host ?? "").toLowerCase().replace(/:\d+$/, "");
  const suffix = `.${domain.toLowerCase()}`;
  if (host.endsWith(suffix)) {
    const m = /^(\d{1,5})-(sbx_[a-z0-9]{16})$/.exec(host.slice(0, -suffix.length));
    if (m && Number(m[1]) >= 1 && Number(m[1]) <= 65535) return { sandboxId: m[2]!, port: Number(m[1]) };
  }
  const id = headers["e2b-sandbox-id"];
  const port = Number(headers["e2b-sandbox-port"]);
  if (typeof id === "string" && /^sbx_[a-z0-9]{16}$/.test(id) && Number.isInteger(port) && port >= 1 && port <= 65535 && port !== ENVD_PORT) return { sandboxId: id, port };
  return null;
}

function cookieToken(header: string | undefined): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === COOKIE) return v.join("=");
  }
  return undefined;
}

/** The request's headers for the sandbox: the daemon's own credentials taken out, X-Forwarded-* added. */
function forwardedHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || k === TOKEN_HEADER || k === E2B_TOKEN_HEADER) continue;
    out[k] = v;
  }
  if (typeof out.cookie === "string") {
    const kept = out.cookie.split(";").filter((c) => c.trim().split("=")[0] !== COOKIE).join(";").trim();
    if (kept) out.cookie = kept;
    else delete out.cookie;
  }
  const remote = req.socket.remoteAddress ?? "";
  const prior = req.headers["x-forwarded-for"];
  out["x-forwarded-for"] = prior ? `${String(prior)}, ${remote}` : remote;
  out["x-forwarded-host"] = req.headers.host ?? "";
  out["x-forwarded-proto"] = "encrypted" in req.socket ? "https" : "http";
  return out;
}

/** Headers for one connection only (RFC 9110 7.6.1): not passed on; the sandbox gets one request per connection. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);

function withoutHopByHop(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const named = String(headers.connection ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase());
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP_BY_HOP.has(k) && !named.includes(k)));
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");
}

/** The same for a reply's raw [name, value, ...] list: the client's connection to the daemon keeps its own terms. */
function rawWithoutHopByHop(raw: string[]): string[] {
  const named = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === "connection") for (const n of raw[i + 1]!.split(",")) named.add(n.trim().toLowerCase());
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name) && !named.has(name)) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

function text(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  res.end(`${body}\n`);
}

function statusOf(err: unknown): number {
  if (err instanceof ApiError) return err.code === "unauthorized" ? 401 : err.code === "sandbox_not_found" ? 404 : 502;
  return 502;
}

/** Forwards requests for sandboxes' ports: plain HTTP (keep-alive, streaming both ways) and upgrades (WebSocket). */
export class PreviewProxy {
  private readonly upstream: UpstreamClient;

  constructor(
    private readonly preview: PreviewService,
    private readonly log: Logger,
  ) {
    // A connection back in the pool is idle: closed gently, not reset, before a checkpoint.
    this.upstream = new UpstreamClient({ onIdle: (socket) => this.preview.markIdle(socket) });
  }

  route(req: IncomingMessage): PreviewRoute | null {
    return previewRouteOf(req.headers, this.preview.domain) ?? this.preview.domainRoute(req.headers.host ?? "");
  }

  /** A signed URL's first visit: the cookie is set and the browser sent on without the signature. */
  private signedVisit(req: IncomingMessage, res: ServerResponse, route: PreviewRoute): boolean {
    const url = new URL(req.url ?? "/", "http://preview");
    const signed = url.searchParams.get(SIGNED_PARAM);
    if (signed === null) return false;
    if (!this.preview.validSignature(route.sandboxId, route.port, signed)) {
      text(res, 401, `this preview link of sandbox ${route.sandboxId} is invalid or expired`);
      return true;
    }
    url.searchParams.delete(SIGNED_PARAM);
    const expires = Number(signed.split(".")[0]);
    const maxAge = Math.max(0, expires - Math.floor(Date.now() / 1000));
    res.writeHead(303, {
      location: `${url.pathname}${url.search}`,
      "set-cookie": `${COOKIE}=${this.preview.tokenOf(route.sandboxId)}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax`,
      "cache-control": "no-store",
    });
    res.end();
    return true;
  }

  private credential(req: IncomingMessage): { token?: string } {
    const header = req.headers[TOKEN_HEADER] ?? req.headers[E2B_TOKEN_HEADER];
    return { token: (typeof header === "string" ? header : undefined) ?? cookieToken(req.headers.cookie) };
  }

  async handle(req: IncomingMessage, res: ServerResponse, route: PreviewRoute): Promise<void> {
    try {
      if (this.signedVisit(req, res, route)) return;
      const target = await this.preview.open(route.sandboxId, this.credential(req));
      res.once("close", target.release);
      this.forward(req, res, route, target);
    } catch (err) {
      this.log.debug({ err, sandbox: route.sandboxId, port: route.port }, "preview request refused");
      text(res, statusOf(err), (err as Error).message);
    }
  }

  /**
   * One request into the sandbox (upstream/upstream-client.ts). Without a body it goes on a kept-alive
   * connection (a request is then a round trip, not also a TCP handshake into the sandbox's network stack);
   * an idle one is closed before a checkpoint (InboundConnections), and a request is retried once on a fresh
   * connection if the server had just closed the one it got. With a body, on a connection of its own.
   */
  private forward(req: IncomingMessage, res: ServerResponse, route: PreviewRoute, target: PreviewTarget): void {
    const body = hasBody(req) ? { stream: req, length: req.headers["transfer-encoding"] === undefined ? Number(req.headers["content-length"]) : null } : undefined;
    // The body's framing is the client's to set; an Expect was answered by the daemon's own server.
    const kept = Object.entries(withoutHopByHop(forwardedHeaders(req))).filter(([k]) => k !== "content-length" && k !== "expect");
    const headers = kept.flatMap(([k, v]): [string, string][] => (Array.isArray(v) ? v.map((x): [string, string] => [k, x]) : [[k, v]]));
    const abandon = this.upstream.exchange(
      { address: target.address, port: route.port, method: req.method ?? "GET", path: req.url ?? "/", headers, ...(body ? { body } : {}) },
      {
        head: (head) => {
          res.writeHead(head.status, rawWithoutHopByHop(head.rawHeaders));
          // Headers go out now, not with the first body byte: a client timing a long, quiet stream (a code
          // run, server-sent events) from the reply's head must see it when the sandbox sent it.
          res.flushHeaders();
        },
        body: (view, flushed) => {
          res.write(view, flushed);
          return res.writableLength === 0;
        },
        end: () => res.end(),
        fail: (err, headSent) => {
          this.log.debug({ err, sandbox: route.sandboxId, port: route.port }, "preview request failed in the sandbox");
          if (headSent) return void res.destroy();
          const code = (err as NodeJS.ErrnoException).code;
          text(res, 502, code === "ECONNREFUSED" ? `nothing listens on port ${route.port} in sandbox ${route.sandboxId}` : `sandbox ${route.sandboxId} port ${route.port}: ${code ?? err.message}`);
        },
      },
      (socket) => target.track(socket, { idle: false }),
    );
    // A client gone before the whole answer was written: the connection into the sandbox is closed, not reused.
    res.once("close", abandon);
  }

  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, route: PreviewRoute): Promise<void> {
    socket.on("error", () => socket.destroy());
    let target;
    try {
      target = await this.preview.open(route.sandboxId, this.credential(req));
    } catch (err) {
      socket.end(`HTTP/1.1 ${statusOf(err)} Refused\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${(err as Error).message}\n`);
      return;
    }
    const { release } = target;
    const upstream: Socket = connect({ host: target.address, port: route.port });
    target.track(upstream, { idle: false });
    const headers = forwardedHeaders(req);
    const lines = [`${req.method ?? "GET"} ${req.url ?? "/"} HTTP/1.1`, ...Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}: ${x}`) : [`${k}: ${v}`]))];
    upstream.once("connect", () => {
      upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    // An open WebSocket keeps its sandbox awake; the idle clock starts when it closes.
    const close = () => {
      release();
      upstream.destroy();
      socket.destroy();
    };
    upstream.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED") socket.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nnothing listens on port ${route.port} in sandbox ${route.sandboxId}\n`);
      close();
    });
    upstream.once("close", close);
    socket.once("close", close);
  }
}
