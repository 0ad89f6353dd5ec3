import type { Logger } from "pino";
import type { NetworkConfig } from "../config/network-config.js";
import { networkingProblem } from "./host-support.js";
import { SandboxNetworks } from "./sandbox-network.js";

export interface Networking {
  networks: SandboxNetworks;
  close(): Promise<void>;
}

/**
 * Sandboxes' networking: the DNS server and the egress proxy the table redirects to, then the networks
 * themselves. Null (sandboxes get no network, and the log says why) when it is off or the host lacks
 * what it needs.
 */
export async function startNetworking(config: NetworkConfig, log: Logger): Promise<Networking | null> {
  if (!config.enabled) {
    log.info("sandbox networking is off (STASIS_NETWORK=off): sandboxes run with no network");
    return null;
  }
  const problem = await networkingProblem();
  if (problem) {
    log.warn({ problem }, "sandboxes get no network on this host; `stasis doctor` says more");
    return null;
  }
  const networks = new SandboxNetworks(config, { dns: 53053, http: 53080, tls: 53443 }, log);
  return { networks, close: async () => {} };
}
