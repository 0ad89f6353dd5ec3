/**
 * DNS-rebinding protection for the HTTP transport: a page that rebinds its own name to the daemon's
 * address still sends its own name as Host (and Origin), so only the names the daemon is known by pass.
 */
export class HostCheck {
  private readonly allowed: Set<string>;
  private readonly any: boolean;

  /** Host names without ports; IPv6 in brackets ("[::1]"); "*" lets every name through. */
  constructor(hosts: readonly string[]) {
    this.any = hosts.includes("*");
    this.allowed = new Set(hosts.map((h) => h.toLowerCase()));
  }

  /** Why the request is refused, or null when its Host (and Origin, if sent) name an allowed host. */
  refusal(host: string | undefined, origin: string | undefined): string | null {
    if (this.any) return null;
    const name = host === undefined ? null : hostnameOf(`http://${host}`);
    if (name === null || !this.allowed.has(name)) return `host '${host ?? ""}' is not allowed (STASIS_MCP_ALLOWED_HOSTS lists the names the daemon is reached by)`;
    if (origin !== undefined && origin !== "null") {
      const from = hostnameOf(origin);
      if (from === null || !this.allowed.has(from)) return `origin '${origin}' is not allowed`;
    } else if (origin === "null") return "origin 'null' is not allowed";
    return null;
  }
}

function hostnameOf(url: string): string | null {
  try {
    const parsed = new URL(url);
    if (parsed.username || parsed.password || (parsed.pathname !== "/" && parsed.pathname !== "")) return null;
    return parsed.hostname.toLowerCase();
  } catch {
    return null;
  }
}

/** The names a daemon listening on `listenHost` is reached by on its own host. */
export function defaultAllowedHosts(listenHost: string): string[] {
  const hosts = ["localhost", "127.0.0.1", "[::1]"];
  const wildcard = listenHost === "" || listenHost === "0.0.0.0" || listenHost === "::";
  if (!wildcard) hosts.push(listenHost.includes(":") ? `[${listenHost}]` : listenHost);
  return hosts;
}
