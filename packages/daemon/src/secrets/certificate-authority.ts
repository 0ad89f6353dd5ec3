import { execFile } from "node:child_process";
import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import { promisify } from "node:util";
import type { Logger } from "pino";

const run = promisify(execFile);

const DAY_MS = 86_400_000;
/** A leaf is minted again once it has less than this left. */
const RENEW_BEFORE_MS = 7 * DAY_MS;
const HOST_PATTERN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** A host's certificate, signed by the daemon's CA, ready to serve TLS with. */
export interface Leaf {
  host: string;
  certPem: string;
  keyPem: string;
  notAfter: Date;
  context: SecureContext;
}

export interface CertificateAuthorityOptions {
  /** The openssl binary (default `openssl` on PATH). */
  openssl?: string;
  /** Validity of a minted leaf (default 30 days). */
  leafDays?: number;
  /** Leaves kept in memory (default 1024) and on disk (default 4096); the oldest go first. */
  maxCachedLeaves?: number;
  maxStoredLeaves?: number;
  log?: Logger;
}

/**
 * The daemon's own certificate authority, for the egress proxy's TLS interception of secret hosts: sandboxes
 * trust its certificate (certificatePem, installed by the network layer), and it mints a leaf per host name on
 * demand. Made once with the openssl CLI (EC P-256) in `dir`: ca.key (0600), ca.crt, leaves/<host>.pem. A
 * missing, damaged or mismatched pair is replaced by a new CA at open, whose leaves are then minted anew.
 */
export class CertificateAuthority {
  private readonly leaves = new Map<string, Promise<Leaf>>();
  private storedLeaves: number;

  private constructor(
    readonly dir: string,
    readonly certificatePem: string,
    private readonly caCert: X509Certificate,
    private readonly options: CertificateAuthorityOptions,
  ) {
    mkdirSync(this.leafDir, { recursive: true, mode: 0o700 });
    this.storedLeaves = readdirSync(this.leafDir).length;
  }

  /** Opens the CA in `dir`, making it first if there is none (or none usable). */
  static async open(dir: string, options: CertificateAuthorityOptions = {}): Promise<CertificateAuthority> {
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    const keyPath = join(dir, "ca.key");
    const certPath = join(dir, "ca.crt");
    let cert = loadPair(keyPath, certPath);
    if (!cert) {
      if (existsSync(keyPath) || existsSync(certPath)) options.log?.warn({ dir }, "egress CA unusable (missing half, damaged or mismatched): making a new one; sandboxes need its certificate again");
      await makeCa(dir, options.openssl ?? "openssl");
      cert = loadPair(keyPath, certPath);
      if (!cert) throw new Error(`openssl made an unusable CA in ${dir}`);
      // Leaves of the old CA are of no use: clear them so they are not even looked at.
      rmSync(join(dir, "leaves"), { recursive: true, force: true });
    }
    return new CertificateAuthority(dir, cert.toString(), cert, options);
  }

  /** Where the CA certificate (PEM) is, for the network layer to install into sandboxes' trust stores. */
  get certificatePath(): string {
    return join(this.dir, "ca.crt");
  }

  private get leafDir(): string {
    return join(this.dir, "leaves");
  }

  /** The leaf for `host` (lowercase DNS name), from memory, disk or minted now; concurrent calls for one host mint once. */
  async leafFor(host: string): Promise<Leaf> {
    const name = host.toLowerCase().replace(/\.$/, "");
    if (!HOST_PATTERN.test(name) || !/[a-z]/.test(name.split(".").pop() ?? "")) throw new Error(`not a host name a certificate can be made for: '${host}'`);
    const cached = this.leaves.get(name);
    if (cached) {
      const leaf = await cached.catch(() => null);
      if (leaf && leaf.notAfter.getTime() - Date.now() > RENEW_BEFORE_MS) return leaf;
      if (this.leaves.get(name) === cached) this.leaves.delete(name);
      return this.leafFor(name);
    }
    const pending = this.loadOrMint(name);
    this.leaves.set(name, pending);
    pending.catch(() => {
      if (this.leaves.get(name) === pending) this.leaves.delete(name);
    });
    const max = this.options.maxCachedLeaves ?? 1024;
    while (this.leaves.size > max) this.leaves.delete(this.leaves.keys().next().value!);
    return pending;
  }

  private async loadOrMint(host: string): Promise<Leaf> {
    const path = join(this.leafDir, `${host}.pem`);
    const stored = await readFile(path, "utf8").catch(() => null);
    const fromDisk = stored === null ? null : this.parseLeaf(host, stored);
    if (fromDisk && fromDisk.notAfter.getTime() - Date.now() > RENEW_BEFORE_MS) return fromDisk;
    const pem = await this.mint(host);
    const leaf = this.parseLeaf(host, pem);
    if (!leaf) throw new Error(`openssl made an unusable certificate for ${host}`);
    const temp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(temp, pem, { mode: 0o600 });
    await rename(temp, path);
    if (stored === null && ++this.storedLeaves > (this.options.maxStoredLeaves ?? 4096)) this.pruneStoredLeaves();
    return leaf;
  }

  /** A leaf file's key and certificate, if it is this CA's, for `host`, and parses; else null (minted again). */
  private parseLeaf(host: string, pem: string): Leaf | null {
    try {
      const certPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pem)?.[0];
      const keyPem = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(pem)?.[0];
      if (!certPem || !keyPem) return null;
      const cert = new X509Certificate(certPem);
      if (!cert.verify(this.caCert.publicKey) || cert.checkHost(host, { wildcards: false }) !== host) return null;
      return { host, certPem, keyPem, notAfter: new Date(cert.validTo), context: createSecureContext({ key: keyPem, cert: certPem }) };
    } catch {
      return null;
    }
  }

  private async mint(host: string): Promise<string> {
    const openssl = this.options.openssl ?? "openssl";
    const work = await mkdtemp(join(this.dir, ".mint-"));
    try {
      const cnf = join(work, "leaf.cnf");
      await writeFile(
        cnf,
        [
          "[req]", "distinguished_name = dn", "[dn]", "[leaf]",
          "basicConstraints = critical,CA:FALSE",
          "keyUsage = critical,digitalSignature",
          "extendedKeyUsage = serverAuth",
          `subjectAltName = DNS:${host}`,
          "subjectKeyIdentifier = hash",
          "authorityKeyIdentifier = keyid",
          "",
        ].join("\n"),
      );
      const key = join(work, "leaf.key");
      const csr = join(work, "leaf.csr");
      const crt = join(work, "leaf.crt");
      const cn = host.length <= 64 ? host : host.slice(0, 64);
      await run(openssl, ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${cn}`, "-config", cnf], { timeout: 30_000 });
      // A positive 127-bit serial: unique without a serial file.
      const serial = `0x${(randomBytes(16)[0]! & 0x7f).toString(16).padStart(2, "0")}${randomBytes(15).toString("hex")}`;
      const days = String(this.options.leafDays ?? 30);
      await run(openssl, ["x509", "-req", "-in", csr, "-CA", this.certificatePath, "-CAkey", join(this.dir, "ca.key"), "-set_serial", serial, "-days", days, "-extfile", cnf, "-extensions", "leaf", "-out", crt], { timeout: 30_000 });
      this.options.log?.info({ host }, "minted an egress TLS certificate");
      return `${await readFile(crt, "utf8")}${await readFile(key, "utf8")}`;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Keeps the newest stored leaves (a wildcard secret host can be asked for any number of names). */
  private pruneStoredLeaves(): void {
    const max = this.options.maxStoredLeaves ?? 4096;
    const files = readdirSync(this.leafDir)
      .filter((f) => f.endsWith(".pem"))
      .map((f) => ({ f, at: statSync(join(this.leafDir, f)).mtimeMs }))
      .sort((a, b) => a.at - b.at);
    for (const { f } of files.slice(0, Math.max(0, files.length - Math.floor(max * 0.9)))) rmSync(join(this.leafDir, f), { force: true });
    this.storedLeaves = readdirSync(this.leafDir).length;
  }
}

/** The CA certificate if the key and certificate both parse and belong together; else null. */
function loadPair(keyPath: string, certPath: string): X509Certificate | null {
  try {
    const cert = new X509Certificate(readFileSync(certPath));
    const publicOfKey = createPublicKey(createPrivateKey(readFileSync(keyPath))).export({ type: "spki", format: "der" });
    if (!publicOfKey.equals(cert.publicKey.export({ type: "spki", format: "der" })) || !cert.ca) return null;
    if (new Date(cert.validTo).getTime() - Date.now() < 30 * DAY_MS) return null;
    chmodSync(keyPath, 0o600);
    return cert;
  } catch {
    return null;
  }
}

/** Makes a fresh CA key and certificate in a temporary folder, then moves them into place (key last to fail safe). */
async function makeCa(dir: string, openssl: string): Promise<void> {
  const work = await mkdtemp(join(dir, ".ca-"));
  try {
    const cnf = join(work, "ca.cnf");
    writeFileSync(cnf, ["[req]", "distinguished_name = dn", "[dn]", "[ca]", "basicConstraints = critical,CA:TRUE,pathlen:0", "keyUsage = critical,keyCertSign,cRLSign", "subjectKeyIdentifier = hash", ""].join("\n"));
    const id = randomBytes(4).toString("hex");
    await run(
      openssl,
      ["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(work, "ca.key"), "-out", join(work, "ca.crt"), "-days", "3650", "-subj", `/O=Stasis/CN=Stasis egress CA ${id}`, "-config", cnf, "-extensions", "ca"],
      { timeout: 30_000 },
    );
    chmodSync(join(work, "ca.key"), 0o600);
    chmodSync(join(work, "ca.crt"), 0o644);
    renameSync(join(work, "ca.crt"), join(dir, "ca.crt"));
    renameSync(join(work, "ca.key"), join(dir, "ca.key"));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
