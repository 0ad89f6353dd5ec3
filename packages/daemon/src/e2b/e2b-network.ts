import { z } from "zod";
import { NetworkPolicySchema, type NetworkPolicy } from "@stasis/protocol";
import { E2bHttpError } from "./e2b-http-error.js";

const ALL_TRAFFIC = "0.0.0.0/0";

/** E2B's `network` (SDK 2.51 shapes): egress lists and per-host header transforms. */
export const E2bNetworkSchema = z.looseObject({
  allowOut: z.array(z.string().max(253)).max(256).nullish(),
  denyOut: z.array(z.string().max(253)).max(256).nullish(),
  rules: z.record(z.string().max(253), z.array(z.looseObject({ transform: z.looseObject({ headers: z.record(z.string().max(256), z.string().max(16 * 1024)).nullish() }).nullish() })).max(16)).nullish(),
  allowPublicTraffic: z.boolean().nullish(),
  httpsPorts: z.array(z.number().int()).nullish(),
  maskRequestHost: z.string().nullish(),
  egressProxy: z.unknown().optional(),
});
export type E2bNetwork = z.infer<typeof E2bNetworkSchema>;

/** Header transforms by host pattern (exact or `*.` wildcard): what E2B's `rules` ask the proxy to set. */
export type HeaderRules = Record<string, Record<string, string>>;

/**
 * E2B's egress settings as a Stasis policy. E2B: `allowInternetAccess: false` is `denyOut: [0.0.0.0/0]`;
 * allowOut always wins over denyOut; domains go in allowOut only. Stasis's policy says the same with
 * `internet: false` and an allow list.
 */
export function e2bPolicy(allowInternetAccess: boolean | null | undefined, network: E2bNetwork | null | undefined): { policy: NetworkPolicy; rules: HeaderRules } {
  if (network?.egressProxy !== undefined && network.egressProxy !== null) throw new E2bHttpError(400, "network.egressProxy is not supported by Stasis (sandboxes reach the internet through the daemon's own egress proxy)");
  if (network?.maskRequestHost) throw new E2bHttpError(400, "network.maskRequestHost is not supported by Stasis yet");
  const denyOut = network?.denyOut ?? [];
  const blocksAll = allowInternetAccess === false || denyOut.includes(ALL_TRAFFIC);
  // `true` is what SDKs up to 2.50 send unless told otherwise: it leaves the daemon's default (an operator
  // who turned the internet off by default keeps it off); only `false` says something.
  const candidate = {
    ...(blocksAll ? { internet: false } : {}),
    ...(network?.allowOut ? { allowOut: network.allowOut } : {}),
    denyOut: denyOut.filter((t) => t !== ALL_TRAFFIC),
  };
  const parsed = NetworkPolicySchema.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new E2bHttpError(400, `invalid network: ${issue ? `${issue.path.join(".")}: ${issue.message}` : "rejected"}`);
  }
  const rules: HeaderRules = {};
  for (const [host, list] of Object.entries(network?.rules ?? {})) {
    const pattern = host.trim().toLowerCase();
    if (pattern === "*" || !NetworkPolicySchema.shape.allowOut.unwrap().element.safeParse(pattern).success || /^[\d./]+$/.test(pattern)) {
      throw new E2bHttpError(400, `invalid network.rules key '${host}': a domain name or *.example.com`);
    }
    // Rule sets are not merged: the last rule's headers win where two set one name.
    rules[pattern] = Object.assign({}, ...list.map((r) => r.transform?.headers ?? {})) as Record<string, string>;
  }
  return { policy: parsed.data, rules };
}
