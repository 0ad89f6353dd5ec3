import { X509Certificate } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import type { Logger } from "pino";
import type { TlsConfig } from "../config/tls-config.js";

/** A certificate and its key, as files: their names and a context to serve them with. */
interface LoadedPair {
  certFile: string;
  /** DNS names it is valid for (subjectAltName, else the subject's CN); `*.example.com` for wildcards. */
  names: string[];
  notAfter: number;
  context: SecureContext;
  pem: { cert: Buffer; key: Buffer };
}

/** How often (at most) the files are looked at again for renewals: a stat per file, on a TLS handshake. */
const RECHECK_MS = 10_000;

/** DNS names a certificate covers, lower case. */
export function namesOf(cert: X509Certificate): string[] {
  const san = (cert.subjectAltName ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("DNS:"))
    .map((s) => s.slice(4).toLowerCase());
  if (san.length > 0) return san;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/**
 * The certificate/key file pairs in a folder and in its immediate subfolders, in the layouts tools write:
 * `name.crt` + `name.key`, mkcert's `name.pem` + `name-key.pem`, certbot's `live/<domain>/fullchain.pem` +
 * `privkey.pem`.
 */
export function pairsIn(dir: string): { cert: string; key: string }[] {
  const pairs: { cert: string; key: string }[] = [];
  const visit = (folder: string, depth: number) => {
    let entries: string[];
    try {
      entries = readdirSync(folder).sort();
    } catch {
      return;
    }
    const has = new Set(entries);
    for (const name of entries) {
      const path = join(folder, name);
      if (depth === 0 && statSync(path, { throwIfNoEntry: false })?.isDirectory()) visit(path, 1);
      else if (name === "fullchain.pem" && has.has("privkey.pem")) pairs.push({ cert: path, key: join(folder, "privkey.pem") });
      else if (name.endsWith(".crt") && has.has(`${name.slice(0, -4)}.key`)) pairs.push({ cert: path, key: join(folder, `${name.slice(0, -4)}.key`) });
      else if (name.endsWith(".pem") && !name.endsWith("-key.pem") && has.has(`${name.slice(0, -4)}-key.pem`)) pairs.push({ cert: path, key: join(folder, `${name.slice(0, -4)}-key.pem`) });
    }
  };
  visit(dir, 0);
  return pairs;
}

/** Whether a certificate name (maybe `*.example.com`) covers a host name: a wildcard stands for one label. */
export function covers(name: string, host: string): boolean {
  if (name === host) return true;
  if (!name.startsWith("*.")) return false;
  const dot = host.indexOf(".");
  return dot > 0 && host.slice(dot + 1) === name.slice(2);
}

/**
 * The daemon's TLS certificates: a default pair and a folder of pairs, each served to the host names it
 * carries (exact names before wildcards; among several, the one valid longest, so a renewal wins). Files
 * are read again when they change, so a renewal needs no restart. A pair that cannot be read is logged and
 * skipped; the default pair must be good (the daemon does not start without it).
 */
export class TlsCertificates {
  private pairs: LoadedPair[] = [];
  private fallback: LoadedPair | null = null;
  private signature = "";
  private checkedAt = 0;

  constructor(
    private readonly config: TlsConfig,
    private readonly log: Logger,
  ) {
    this.reload(true);
  }

  /** The context for a TLS client hello's server name; the default pair when nothing names it. */
  contextFor(servername: string): SecureContext | null {
    this.recheck();
    const host = servername.toLowerCase();
    const best = (exact: boolean) =>
      this.pairs.filter((p) => p.names.some((n) => (exact ? n === host : covers(n, host)))).sort((a, b) => b.notAfter - a.notAfter)[0];
    return (best(true) ?? best(false) ?? this.fallback)?.context ?? null;
  }

  /** Whether some certificate (the default one included) covers a host name. */
  covered(host: string): boolean {
    return [...this.pairs, ...(this.fallback ? [this.fallback] : [])].some((p) => p.names.some((n) => covers(n, host.toLowerCase())));
  }

  /** The pair for clients that send no server name (they connect by address): the default, else the first. */
  defaultPem(): { cert: Buffer; key: Buffer } | null {
    this.recheck();
    return (this.fallback ?? this.pairs[0])?.pem ?? null;
  }

  private files(): string[] {
    return [...(this.config.certFile && this.config.keyFile ? [this.config.certFile, this.config.keyFile] : []), ...(this.config.dir ? pairsIn(this.config.dir).flatMap((p) => [p.cert, p.key]) : [])];
  }

  private recheck(): void {
    if (Date.now() - this.checkedAt < RECHECK_MS) return;
    this.reload(false);
  }

  private reload(first: boolean): void {
    this.checkedAt = Date.now();
    const signature = this.files().map((f) => `${f}:${statSync(f, { throwIfNoEntry: false })?.mtimeMs ?? 0}`).join("|");
    if (signature === this.signature) return;
    this.signature = signature;
    if (this.config.certFile && this.config.keyFile) {
      try {
        this.fallback = this.load(this.config.certFile, this.config.keyFile);
      } catch (err) {
        if (first) throw new Error(`STASIS_TLS_CERT/STASIS_TLS_KEY: ${(err as Error).message}`);
        this.log.error({ err, cert: this.config.certFile }, "the default TLS certificate could not be read again; the one loaded before stays in use");
      }
    }
    const pairs: LoadedPair[] = [];
    for (const { cert, key } of this.config.dir ? pairsIn(this.config.dir) : []) {
      try {
        pairs.push(this.load(cert, key));
      } catch (err) {
        this.log.warn({ cert, key, err: (err as Error).message }, "skipped a TLS certificate that could not be loaded");
      }
    }
    this.pairs = pairs;
    this.log.info({ certificates: [...(this.fallback ? [this.fallback] : []), ...pairs].map((p) => ({ file: p.certFile, names: p.names, notAfter: new Date(p.notAfter).toISOString() })) }, "TLS certificates loaded");
  }

  private load(certFile: string, keyFile: string): LoadedPair {
    const cert = readFileSync(certFile);
    const key = readFileSync(keyFile);
    const x509 = new X509Certificate(cert);
    // createSecureContext checks that the key belongs to the certificate.
    const context = createSecureContext({ cert, key });
    return { certFile, names: namesOf(x509), notAfter: Date.parse(x509.validTo), context, pem: { cert, key } };
  }
}
