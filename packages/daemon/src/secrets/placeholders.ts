import { randomBytes } from "node:crypto";
import { isBelowDomain, parseEgressTarget } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import type { SecretSource } from "./secret-store.js";

/**
 * A placeholder for a secret, put in the sandbox's environment instead of the value: random per sandbox (and
 * per call), so one sandbox's placeholder is useless in another, and recognisable in logs by its prefix.
 */
export function makePlaceholder(name: string): string {
  return `stasis_secret_${name}_${randomBytes(16).toString("hex")}`;
}

/**
 * Placeholders for a new sandbox's secrets (name -> placeholder), checked first: 404 `secret_not_found` for a
 * name with no secret, 503 `secrets_unavailable` when a value cannot be decrypted, so a create fails up front
 * rather than each request later.
 */
export function issuePlaceholders(store: SecretSource, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const name of names) {
    if (!store.reveal(name)) throw new ApiError("secret_not_found", `no secret '${name}'`);
    out[name] = makePlaceholder(name);
  }
  return out;
}

/** A host name as the proxy compares it: lowercase, without a trailing dot or a `:port`. */
export function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/:\d+$/, "").replace(/\.$/, "");
}

/** Whether `host` is one of a secret's hosts: equal to a name, or below a `*.` name (any depth), as parseEgressTarget reads them. */
export function hostMatches(patterns: readonly string[], host: string): boolean {
  const name = normalizeHost(host);
  for (const p of patterns) {
    const t = parseEgressTarget(p);
    if (t?.kind === "domain" && t.name === name) return true;
    if (t?.kind === "wildcard" && isBelowDomain(name, t.suffix)) return true;
  }
  return false;
}

/**
 * Names of the secrets whose placeholder appears in the header section of a plain-HTTP request head (up to
 * the blank line, or all of `head` if it is not there yet). For the egress proxy's splice path: a placeholder
 * going to a host that is not the secret's goes out unreplaced, and this lets the proxy log that it did.
 */
export function findPlaceholders(head: Buffer, placeholders: Record<string, string>): string[] {
  const end = head.indexOf("\r\n\r\n");
  const headers = end < 0 ? head : head.subarray(0, end);
  return Object.entries(placeholders)
    .filter(([, placeholder]) => placeholder.length > 0 && headers.includes(placeholder, 0, "latin1"))
    .map(([name]) => name);
}

/**
 * The headers a sandbox's rules set for `host`: an exact pattern first, else the longest matching `*.`
 * wildcard (E2B's precedence; rule sets are not merged). Empty when none matches.
 */
export function headerRulesFor(rules: Record<string, Record<string, string>> | undefined, host: string): Record<string, string> {
  if (!rules) return {};
  const name = normalizeHost(host);
  if (rules[name]) return rules[name];
  let best: { suffix: string; headers: Record<string, string> } | null = null;
  for (const [pattern, headers] of Object.entries(rules)) {
    if (!pattern.startsWith("*.")) continue;
    const suffix = pattern.slice(2).toLowerCase();
    if (isBelowDomain(name, suffix) && (!best || suffix.length > best.suffix.length)) best = { suffix, headers };
  }
  return best?.headers ?? {};
}

/** `rawHeaders` with each of `set` put in, replacing any header of that name (case-insensitive). */
export function setHeaders(rawHeaders: readonly string[], set: Record<string, string>): string[] {
  const names = new Set(Object.keys(set).map((n) => n.toLowerCase()));
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (!names.has(rawHeaders[i]!.toLowerCase())) out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  for (const [n, v] of Object.entries(set)) out.push(n, v);
  return out;
}

export interface Replacement {
  name: string;
  placeholder: string;
  value: string;
}

/**
 * `rawHeaders` (name, value, name, value...) with every occurrence of each placeholder in a value replaced
 * by its secret's value; names are left alone. `used` lists the secrets that were put in.
 */
export function replaceInHeaders(rawHeaders: readonly string[], replacements: readonly Replacement[]): { headers: string[]; used: string[] } {
  const used = new Set<string>();
  const headers = rawHeaders.map((item, i) => {
    if (i % 2 === 0) return item;
    let value = item;
    for (const r of replacements) {
      if (!value.includes(r.placeholder)) continue;
      value = value.split(r.placeholder).join(r.value);
      used.add(r.name);
    }
    return value;
  });
  return { headers, used: [...used] };
}

/** Values shorter than this are not scrubbed from response headers: too likely to match by chance. */
const MIN_SCRUBBED_LENGTH = 8;

/** Response headers with any secret value the upstream echoed turned back into its placeholder. */
export function scrubHeaders(rawHeaders: readonly string[], replacements: readonly Replacement[]): string[] {
  return rawHeaders.map((item, i) => {
    if (i % 2 === 0) return item;
    let value = item;
    for (const r of replacements) if (r.value.length >= MIN_SCRUBBED_LENGTH && value.includes(r.value)) value = value.split(r.value).join(r.placeholder);
    return value;
  });
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate"]);

/**
 * Drops the headers that describe one hop's connection (Connection, Keep-Alive, Proxy-*, and any header the
 * Connection header names), which the proxy's own connections set for themselves. Transfer-Encoding stays:
 * it frames the body Node streams on. With `keepUpgrade` (a WebSocket handshake) Connection and Upgrade stay.
 */
export function dropHopByHop(rawHeaders: readonly string[], keepUpgrade = false): string[] {
  const named = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === "connection") for (const t of rawHeaders[i + 1]!.split(",")) named.add(t.trim().toLowerCase());
  }
  if (keepUpgrade) named.delete("upgrade");
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const keep = keepUpgrade && name === "connection" ? true : !HOP_BY_HOP.has(name) && !(named.has(name) && name !== "transfer-encoding");
    if (keep) out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  return out;
}
