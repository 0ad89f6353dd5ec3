import type { Socket } from "node:net";
import type { ResolvedNetworkPolicy } from "@stasis/protocol";

/** What the network layer knows of one sandbox on it, looked up by the address its traffic comes from. */
export interface SandboxOnNetwork {
  id: string;
  /** The sandbox's IPv4 address (its side of the veth). */
  address: string;
  policy: ResolvedNetworkPolicy;
  /** Secrets the sandbox holds placeholders for: name -> placeholder (the value stays in the daemon). */
  placeholders: Record<string, string>;
  /** Headers set on requests to a host pattern (exact or `*.` wildcard): E2B's `rules` transforms. */
  headerRules?: Record<string, Record<string, string>>;
}

/** Finds the sandbox a packet or connection came from by its source address. */
export type SandboxLookup = (sourceAddress: string) => SandboxOnNetwork | undefined;

/** Resolves a name to IPv4 addresses through the daemon's upstream resolvers (never the sandbox's answer). */
export type NameResolver = (name: string) => Promise<string[]>;

/**
 * A connection the egress proxy has accepted, already allowed by the policy and about to be dialled to
 * `host:port` (`address` is the resolved address the proxy would dial). An interceptor (secret injection)
 * may take it over: it then owns `client`, whose first bytes (`head`) were already read.
 */
export interface InterceptContext {
  sandbox: SandboxOnNetwork;
  /** The name from the TLS SNI or the HTTP Host header. */
  host: string;
  port: number;
  address: string;
  tls: boolean;
  client: Socket;
  head: Buffer;
}

/** Returns true when it took the connection over, false to let the proxy splice it through unchanged. */
export type ConnectionInterceptor = (ctx: InterceptContext) => boolean;
