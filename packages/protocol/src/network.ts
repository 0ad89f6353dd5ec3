import { z } from "zod";

/**
 * One egress target: a CIDR (`203.0.113.0/24`), an IPv4 address (`203.0.113.7`), a domain name
 * (`pypi.org`) or a wildcard domain (`*.githubusercontent.com`: any name below it, not the name itself).
 * Domain targets apply to TCP 80 (by the HTTP Host header) and TCP 443 (by the TLS SNI), checked by the
 * daemon's egress proxy, which resolves the name itself and dials that address. Other ports and UDP
 * match by address only.
 */
export const EgressTargetSchema = z
  .string()
  .min(1)
  .max(253)
  .refine((t) => parseEgressTarget(t) !== null, "not a CIDR, an IPv4 address or a domain name (exact or *.example.com)")
  .meta({ description: "A CIDR, an IPv4 address, a domain name or `*.` + a domain name." });

const targets = z.array(EgressTargetSchema).max(256);

/**
 * Which outbound connections a sandbox may make. A target in allowOut is always allowed; else a target in
 * denyOut is refused; else, when allowOut is non-empty, everything is refused (an allow list means deny
 * everything else); else `internet` decides. Whatever the policy says, the host's own addresses, other
 * sandboxes, link-local and cloud metadata (169.254.0.0/16) and private ranges (RFC 1918, 100.64.0.0/10)
 * stay out of reach unless the operator opens a range in the daemon's configuration.
 */
export const NetworkPolicySchema = z
  .object({
    internet: z.boolean().optional().meta({ description: "Reach the internet at all. Default: the daemon's (STASIS_NETWORK_DEFAULT, on unless configured off)." }),
    allowOut: targets.optional().meta({ description: "Allowed targets; when non-empty, nothing else is." }),
    denyOut: targets.optional().meta({ description: "Refused targets (allowOut wins where both match)." }),
  })
  .strict()
  .meta({ id: "NetworkPolicy" });
export type NetworkPolicy = z.infer<typeof NetworkPolicySchema>;

/** A policy with every field filled: what a sandbox runs under. */
export const ResolvedNetworkPolicySchema = z
  .object({ internet: z.boolean(), allowOut: z.array(z.string()), denyOut: z.array(z.string()) })
  .meta({ id: "ResolvedNetworkPolicy" });
export type ResolvedNetworkPolicy = z.infer<typeof ResolvedNetworkPolicySchema>;

export const SandboxNetworkSchema = z
  .object({
    address: z.string().nullable().meta({ description: "The sandbox's IPv4 address on its private network; null without networking (the daemon's networking is off or unavailable)." }),
    policy: ResolvedNetworkPolicySchema,
    secrets: z.array(z.string()).meta({ description: "Names of the secrets the sandbox holds placeholders for." }),
  })
  .meta({ id: "SandboxNetwork" });
export type SandboxNetwork = z.infer<typeof SandboxNetworkSchema>;

export const SecretNameSchema = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "a secret name is an environment variable name: letters, digits and _, not starting with a digit")
  .meta({ description: "The secret's name; a sandbox holding it sees an environment variable of this name." });

/** A host a secret may go to: a domain name or `*.` + a domain name (TLS to it is terminated by the daemon's egress proxy). */
export const SecretHostSchema = z
  .string()
  .min(1)
  .max(253)
  .refine((h) => { const t = parseEgressTarget(h); return t !== null && (t.kind === "domain" || t.kind === "wildcard"); }, "a domain name or *.example.com");

export const CreateSecretRequestSchema = z
  .object({
    name: SecretNameSchema,
    value: z
      .string()
      .min(1)
      .max(16 * 1024)
      .regex(/^[^\0\r\n]*$/, "a secret value cannot contain NUL, CR or LF (it goes into HTTP headers)")
      .meta({ description: "Stored encrypted; never returned by any API." }),
    hosts: z.array(SecretHostSchema).min(1).max(64).meta({ description: "The only hosts the value is sent to; anywhere else the sandbox's placeholder goes out as it is." }),
  })
  .strict()
  .meta({ id: "CreateSecretRequest", description: "Creates the secret, or replaces the value and hosts of an existing one of that name." });
export type CreateSecretRequest = z.infer<typeof CreateSecretRequestSchema>;

export const SecretSchema = z
  .object({ name: z.string(), hosts: z.array(z.string()), createdAt: z.iso.datetime(), updatedAt: z.iso.datetime() })
  .meta({ id: "Secret", description: "A secret without its value." });
export type Secret = z.infer<typeof SecretSchema>;

export const SecretListSchema = z.object({ secrets: z.array(SecretSchema) }).meta({ id: "SecretList" });
export type SecretList = z.infer<typeof SecretListSchema>;

export type EgressTarget =
  | { kind: "cidr"; network: number; prefix: number; text: string }
  | { kind: "domain"; name: string; text: string }
  | { kind: "wildcard"; suffix: string; text: string };

const label = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Parses an IPv4 address to a 32-bit unsigned number, or null. */
export function parseIpv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

/** A target's parsed form (names lowercased, a CIDR's network bits kept as given), or null if malformed. */
/**
 * Whether `name` is below `suffix` at any depth (`a.example.com` and `a.b.example.com` for `example.com`,
 * never `example.com` itself): what a `*.example.com` egress target, secret host or header rule covers.
 * Both lowercase, without trailing dots. (A TLS certificate's wildcard covers one label only: not this.)
 */
export function isBelowDomain(name: string, suffix: string): boolean {
  return name.length > suffix.length + 1 && name.endsWith(suffix) && name[name.length - suffix.length - 1] === ".";
}

export function parseEgressTarget(text: string): EgressTarget | null {
  const t = text.trim().toLowerCase();
  const [ip, prefixText, extra] = t.split("/");
  if (extra === undefined && ip !== undefined) {
    const addr = parseIpv4(ip);
    if (addr !== null) {
      if (prefixText === undefined) return { kind: "cidr", network: addr, prefix: 32, text: t };
      if (!/^(0|[1-9][0-9]?)$/.test(prefixText) || Number(prefixText) > 32) return null;
      const prefix = Number(prefixText);
      const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
      return { kind: "cidr", network: (addr & mask) >>> 0, prefix, text: t };
    }
  }
  const wildcard = t.startsWith("*.");
  const name = (wildcard ? t.slice(2) : t).replace(/\.$/, "");
  const labels = name.split(".");
  if (labels.length < 1 || name.length > 253 || !labels.every((l) => label.test(l))) return null;
  // A bare number is not a name (an IPv4 typo); a name needs a letter in its last label.
  if (!/[a-z]/.test(labels[labels.length - 1] ?? "")) return null;
  return wildcard ? { kind: "wildcard", suffix: name, text: t } : { kind: "domain", name, text: t };
}
