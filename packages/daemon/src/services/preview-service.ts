import { createHmac, timingSafeEqual } from "node:crypto";
import type { Socket } from "node:net";
import type { CreateDomainRequest, Domain, PortList, Preview, SetPreviewRequest, SignedPreviewUrl } from "@stasis/protocol";
import type { DomainStore } from "../store/domain-store.js";
import { ApiError } from "../errors/api-error.js";
import type { ExecService } from "./exec-service.js";
import { newPreviewToken } from "./lifecycle/network-files.js";
import type { SandboxService } from "./sandbox-service.js";
import { InboundConnections } from "./lifecycle/inbound-connections.js";

export interface PreviewConfig {
  /** Host names are `<port>-<sandboxId>.<domain>`. */
  domain: string;
  /** The URL of a port, `{port}` and `{id}` replaced (the daemon's own address unless configured). */
  urlTemplate: () => string;
}

/** Where a preview request goes, once allowed: the sandbox's address, woken, and a release of its activity. */
export interface PreviewTarget {
  address: string;
  release: () => void;
  /** Registers a connection into the sandbox, in use: reset before a checkpoint (see InboundConnections). */
  track: (socket: Socket, state: { idle: boolean }) => void;
}

/** Whether a request may open the port: the token, from the header or cookie a signed URL set. */
export type PreviewCredential = { token?: string | undefined };

const SIGNATURE = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

function signature(token: string, id: string, port: number, expires: number): string {
  return createHmac("sha256", token).update(`${id}:${port}:${expires}`).digest("base64url");
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `/proc/net/tcp` and `tcp6` lines in LISTEN state (0A) → their local ports, sorted, unique. */
export function listeningPorts(procNetTcp: string): number[] {
  const ports = new Set<number>();
  for (const line of procNetTcp.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[3] !== "0A" || !f[1]) continue;
    const port = parseInt(f[1].split(":").pop() ?? "", 16);
    if (port > 0 && port < 65536) ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * Preview URLs of sandboxes' ports: who may open them (a token per sandbox, public or not, signed URLs
 * made from the token, so rotating it revokes them all), which ports listen, and the target of a request,
 * woken first. The HTTP forwarding itself is the preview proxy's (http/preview-proxy.ts).
 */
export class PreviewService {
  constructor(
    private readonly sandboxes: SandboxService,
    private readonly exec: ExecService,
    private readonly config: PreviewConfig,
    private readonly domains: DomainStore,
    private readonly inbound: InboundConnections = new InboundConnections(),
  ) {}

  /** Serves a sandbox's port at a host name of the user's (the sandbox's access settings apply to it). */
  createDomain(request: CreateDomainRequest): Domain {
    const host = request.host.toLowerCase();
    const own = this.config.domain.toLowerCase();
    if (host === own || host.endsWith(`.${own}`)) throw new ApiError("invalid_request", `${host} is under the preview domain ${own}, whose names are <port>-<sandbox id>.${own} already`);
    this.sandboxes.networkOf(request.sandboxId);
    return this.domains.put(host, request.sandboxId, request.port);
  }

  /** Custom domains; those of sandboxes deleted since are dropped on the way. */
  listDomains(): Domain[] {
    return this.domains.list().filter((d) => {
      try {
        this.sandboxes.get(d.sandboxId);
        return true;
      } catch {
        this.domains.delete(d.host);
        return false;
      }
    });
  }

  deleteDomain(host: string): void {
    if (!this.domains.delete(host.toLowerCase())) throw new ApiError("domain_not_found", `no custom domain '${host}'`);
  }

  /** The sandbox port a custom host name is mapped to, or null. */
  domainRoute(host: string): { sandboxId: string; port: number } | null {
    const d = this.domains.get(host.toLowerCase().replace(/:\d+$/, ""));
    return d ? { sandboxId: d.sandboxId, port: d.port } : null;
  }

  get domain(): string {
    return this.config.domain;
  }

  urlOf(id: string, port: number): string {
    return this.config.urlTemplate().replaceAll("{port}", String(port)).replaceAll("{id}", id);
  }

  /**
   * What E2B's SDK appends to `<port>-<id>.` in getHost(): the preview URL's host and port, when the URL
   * has that shape (it does unless STASIS_PREVIEW_URL says otherwise); null if not.
   */
  e2bDomain(): string | null {
    const m = /^https?:\/\/\{port\}-\{id\}\.([^/]+)\/?$/.exec(this.config.urlTemplate());
    return m?.[1] ?? null;
  }

  get(id: string): Preview {
    const network = this.sandboxes.networkOf(id);
    return { public: network.previewPublic ?? false, token: network.previewToken ?? "", urlTemplate: this.config.urlTemplate().replaceAll("{id}", id) };
  }

  async set(id: string, change: SetPreviewRequest): Promise<Preview> {
    await this.sandboxes.updateNetworkRecord(id, (n) => ({
      ...n,
      ...(change.public !== undefined ? { previewPublic: change.public } : {}),
      ...(change.rotateToken || !n.previewToken ? { previewToken: newPreviewToken() } : {}),
    }));
    return this.get(id);
  }

  sign(id: string, port: number, expiresInS: number): SignedPreviewUrl {
    const token = this.get(id).token;
    const expires = Math.floor(Date.now() / 1000) + expiresInS;
    const url = new URL(this.urlOf(id, port));
    url.searchParams.set("stasis_preview", `${expires}.${signature(token, id, port, expires)}`);
    return { url: url.toString(), expiresAt: new Date(expires * 1000).toISOString() };
  }

  /** Whether `value` (the `stasis_preview` query parameter) is a valid, unexpired signature for this port. */
  validSignature(id: string, port: number, value: string): boolean {
    const m = SIGNATURE.exec(value);
    const token = this.sandboxes.networkOf(id).previewToken;
    if (!m || !token) return false;
    const expires = Number(m[1]);
    return expires * 1000 > Date.now() && same(m[2]!, signature(token, id, port, expires));
  }

  /** The token to put in the cookie a valid signed URL sets. */
  tokenOf(id: string): string {
    return this.sandboxes.networkOf(id).previewToken ?? "";
  }

  async ports(id: string): Promise<PortList> {
    this.sandboxes.networkOf(id);
    const r = await this.exec.run(id, { cmd: "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null", env: {}, user: "root", stdin: false, timeoutMs: 10_000 });
    return { ports: listeningPorts(r.stdout).map((port) => ({ port, url: this.urlOf(id, port) })) };
  }

  /**
   * Checks the request may open the sandbox's port, wakes the sandbox (requests to one sleeping sandbox
   * share its one wake: they queue on its lock), and holds it awake until `release`.
   */
  async open(id: string, credential: PreviewCredential): Promise<PreviewTarget> {
    const network = this.sandboxes.networkOf(id);
    if (!network.previewPublic) {
      if (!credential.token || !network.previewToken || !same(credential.token, network.previewToken)) {
        throw new ApiError("unauthorized", `sandbox ${id}'s ports are private: send its preview token (X-Stasis-Preview-Token) or open a signed URL`);
      }
    }
    return this.wake(id);
  }

  /** A kept-alive connection went back to its pool: closed gently, not reset, before a checkpoint. */
  markIdle(socket: Socket): void {
    this.inbound.markIdle(socket);
  }

  /** As open(), for a caller that showed the API key (a port-forward): no preview token needed. */
  async openAsOwner(id: string): Promise<PreviewTarget> {
    this.sandboxes.networkOf(id);
    return this.wake(id);
  }

  private async wake(id: string): Promise<PreviewTarget> {
    const release = this.sandboxes.hold(id);
    try {
      await this.sandboxes.acquire(id);
      const address = this.sandboxes.networkOf(id).address;
      if (!address) throw new ApiError("network_unavailable", `sandbox ${id} has no address yet`);
      return { address, release, track: (socket, state) => this.inbound.track(id, socket, state) };
    } catch (err) {
      release();
      throw err;
    }
  }
}
