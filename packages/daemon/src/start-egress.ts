import { readFileSync } from "node:fs";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import type { Logger } from "pino";
import type { DaemonConfig } from "./config/config.js";
import { startNetworking, type Networking } from "./network/start-networking.js";
import type { Metrics } from "./observability/metrics.js";
import { CertificateAuthority } from "./secrets/certificate-authority.js";
import { issuePlaceholders } from "./secrets/placeholders.js";
import { createSecretInterceptor } from "./secrets/secret-injector.js";
import type { SecretStore } from "./secrets/secret-store.js";
import type { EgressSecrets } from "./services/lifecycle/sandbox-core.js";

export interface Egress {
  networking: Networking | null;
  /** The operator's extra CAs for sandboxes (STASIS_SANDBOX_EXTRA_CA). */
  extraCaPem: string | null;
  /** Null without networking or without a CA (openssl missing): creates with secrets are then refused. */
  secrets: EgressSecrets | null;
}

/**
 * The composition of what leaves sandboxes: the egress CA and the secret interceptor, handed to the
 * network (DNS, egress proxy, namespaces and rules). Without the CA, sandboxes still get networks.
 */
export async function startEgress(config: DaemonConfig, store: SecretStore, metrics: Metrics, log: Logger): Promise<Egress> {
  if (!config.network.enabled) return { networking: await startNetworking(config.network, log.child({ component: "network" })), secrets: null, extraCaPem: null };
  const extraCaPem = config.network.sandboxCaFile ? readFileSync(config.network.sandboxCaFile, "utf8") : null;
  const ca = await CertificateAuthority.open(join(config.dataDir, "egress-ca"), { log: log.child({ component: "egress-ca" }) }).catch((err: Error) => {
    log.warn({ err: err.message }, "no egress CA (is openssl installed?): sandboxes cannot use secrets; `stasis doctor` says more");
    return null;
  });
  const extra = config.network.extraCaFile ? readFileSync(config.network.extraCaFile, "utf8") : null;
  const interceptor = ca
    ? createSecretInterceptor({
        store,
        ca,
        audit: (use) => store.recordUse(use),
        logger: log.child({ component: "secrets" }),
        ...(extra ? { upstreamCa: [...rootCertificates, extra] } : {}),
      })
    : undefined;
  const networking = await startNetworking(config.network, log.child({ component: "network" }), {
    ...(interceptor ? { interceptor } : {}),
    onAttach: (seconds, how) => metrics.networkAttach.observe({ how }, seconds),
  });
  const secrets = networking && ca ? { issue: (names: readonly string[]) => issuePlaceholders(store, names), caPem: ca.certificatePem } : null;
  return { networking, secrets, extraCaPem };
}
