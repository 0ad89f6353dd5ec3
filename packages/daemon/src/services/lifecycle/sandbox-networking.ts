import type { NetworkPolicy } from "@stasis/protocol";
import { ApiError } from "../../errors/api-error.js";
import type { SandboxNetworkRecord, SandboxRecord } from "../../store/sandbox-store.js";
import type { SandboxCore } from "./sandbox-core.js";

/** Byte counts of a sandbox's network, as SandboxUsage reports them (null without a network). */
export interface NetworkBytes {
  networkSentBytes: number | null;
  networkReceivedBytes: number | null;
}

/**
 * What the API asks of sandboxes' networks: their records (address, policy, preview token), a policy
 * change applied to the host's rules, and byte counts (the record's carried totals plus the live
 * interface's). Namespaces and rules themselves are network/'s; starts and stops attach and detach them.
 */
export class SandboxNetworking {
  constructor(private readonly core: SandboxCore) {}

  recordOf(id: string): SandboxNetworkRecord {
    const network = this.core.record(id).network;
    if (!network || !this.core.deps.network) throw new ApiError("network_unavailable", `sandbox ${id} has no network (STASIS_NETWORK=off, or it was made before networking)`);
    return network;
  }

  updateRecord(id: string, change: (network: SandboxNetworkRecord) => SandboxNetworkRecord): Promise<SandboxNetworkRecord> {
    return this.core.exclusive(id, async () => {
      const next = change(this.recordOf(id));
      this.core.deps.store.setNetwork(id, next);
      return next;
    });
  }

  /**
   * Under the sandbox's lock, so a wake or fork in flight starts with the new policy; new connections follow
   * it at once, open ones are not cut.
   */
  setPolicy(id: string, policy: NetworkPolicy, headerRules?: Record<string, Record<string, string>>): Promise<void> {
    const network = this.core.deps.network;
    if (!network) throw new ApiError("network_unavailable", "sandboxes have no network on this daemon (STASIS_NETWORK=off, or the host lacks what it needs: run `stasis doctor`)");
    return this.core.exclusive(id, async () => {
      const record = this.core.record(id);
      if (!record.network) throw new ApiError("network_unavailable", `sandbox ${id} was created without a network`);
      const next = { ...record.network, policy: network.resolvePolicy(policy, record.network.policy), ...(headerRules ? { headerRules } : {}) };
      await network.update(id, next);
      this.core.deps.store.setNetwork(id, next);
      this.core.touch(id);
    });
  }

  bytesOf(record: SandboxRecord): NetworkBytes {
    if (!record.network) return { networkSentBytes: null, networkReceivedBytes: null };
    const now = this.core.deps.network?.counters(record.id);
    return { networkSentBytes: (record.network.sentBytes ?? 0) + (now?.sentBytes ?? 0), networkReceivedBytes: (record.network.receivedBytes ?? 0) + (now?.receivedBytes ?? 0) };
  }

  totals(): { id: string; sent: number; received: number }[] {
    return this.core.deps.store.withNetwork().map((r) => {
      const b = this.bytesOf(r);
      return { id: r.id, sent: b.networkSentBytes ?? 0, received: b.networkReceivedBytes ?? 0 };
    });
  }
}
