import { chownSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import type { SandboxCore } from "./sandbox-core.js";

/** A sandbox's preview access token: 32 random bytes, URL-safe. */
export function newPreviewToken(): string {
  return randomBytes(32).toString("base64url");
}

/** Where a sandbox with secrets finds the egress CA, and the variables that point common clients at it. */
export const EGRESS_CA_PATH = "/usr/local/share/ca-certificates/stasis-egress.crt";
const SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";
export const EGRESS_CA_ENV = { NODE_EXTRA_CA_CERTS: EGRESS_CA_PATH, SSL_CERT_FILE: SYSTEM_BUNDLE, REQUESTS_CA_BUNDLE: SYSTEM_BUNDLE, CURL_CA_BUNDLE: SYSTEM_BUNDLE };

/**
 * Points the sandbox's resolver at the daemon's DNS (the same address in every sandbox, so a fork's copy
 * stays right). Written on the host before the sandbox runs, so nothing inside can race it; a template
 * whose /etc or resolv.conf is a symlink must not make the daemon write outside the sandbox.
 */
export function writeNetworkFiles(core: SandboxCore, record: SandboxRecord): void {
  const network = core.deps.network;
  if (!network || !record.network) return;
  const rootfs = core.deps.filesystem.paths(record.id).rootfs;
  writeSandboxFile(core.ownerOf(record), rootfs, "/etc/resolv.conf", `# The Stasis daemon's resolver: it answers by this sandbox's network policy.\nnameserver ${network.range.resolver}\noptions edns0\n`);
  // Secrets' hosts are reached through the daemon's TLS: the sandbox trusts its CA, alone and in the
  // bundle; so it does the operator's extra CAs (a TLS-inspecting proxy on the way out).
  const egress = Object.keys(record.network.placeholders).length > 0 || Object.keys(record.network.headerRules ?? {}).length > 0 ? core.deps.secrets?.caPem : undefined;
  const cas = [egress, core.deps.extraCaPem].filter((pem): pem is string => !!pem?.trim());
  if (cas.length === 0) return;
  writeSandboxFile(core.ownerOf(record), rootfs, EGRESS_CA_PATH, cas.map((pem) => pem.trim()).join("\n") + "\n");
  const bundle = readSandboxFile(rootfs, SYSTEM_BUNDLE);
  const missing = cas.filter((pem) => !bundle.includes(pem.trim()));
  if (missing.length > 0) writeSandboxFile(core.ownerOf(record), rootfs, SYSTEM_BUNDLE, [bundle.trimEnd(), ...missing.map((pem) => pem.trim())].join("\n") + "\n");
}

/**
 * Writes a file into the sandbox's root from the host, before the sandbox runs (nothing inside can race
 * it). A template whose folders or file are symlinks must not make the daemon write outside the sandbox:
 * every folder on the way must be a real one, and the file is replaced, never written through.
 */
function writeSandboxFile(owner: number, rootfs: string, path: string, text: string): void {
  let dir = rootfs;
  for (const part of path.split("/").filter(Boolean).slice(0, -1)) {
    dir = join(dir, part);
    const stat = lstatSync(dir, { throwIfNoEntry: false });
    if (!stat) {
      mkdirSync(dir, { mode: 0o755 });
      if (owner !== 0) chownSync(dir, owner, owner);
    } else if (!stat.isDirectory()) return;
  }
  const file = join(rootfs, path);
  if (lstatSync(file, { throwIfNoEntry: false })?.isDirectory()) return;
  rmSync(file, { force: true });
  writeFileSync(file, text, { flag: "wx", mode: 0o644 });
  if (owner !== 0) chownSync(file, owner, owner);
}

/** A file of the sandbox's root read from the host, or "" if absent or reached through a symlink (which could point at a host file). */
function readSandboxFile(rootfs: string, path: string): string {
  let at = rootfs;
  for (const part of path.split("/").filter(Boolean)) {
    at = join(at, part);
    if (lstatSync(at, { throwIfNoEntry: false })?.isSymbolicLink() !== false) return "";
  }
  try {
    return readFileSync(at, "utf8");
  } catch {
    return "";
  }
}
