import { X509Certificate } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CertificateAuthority } from "./certificate-authority.js";

describe("CertificateAuthority", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "stasis-ca-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("is made once, with a private key, and opened again as it is", async () => {
    const ca = await CertificateAuthority.open(dir);
    expect(statSync(join(dir, "ca.key")).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(ca.certificatePem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toMatch(/CN=Stasis egress CA/);
    expect(readFileSync(ca.certificatePath, "utf8")).toBe(ca.certificatePem);
    expect((await CertificateAuthority.open(dir)).certificatePem).toBe(ca.certificatePem);
  });

  it("mints a leaf per host, signed by the CA, for that name only, valid for the days asked", async () => {
    const ca = await CertificateAuthority.open(dir, { leafDays: 30 });
    const leaf = await ca.leafFor("API.Example.com.");
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true);
    expect(cert.subjectAltName).toBe("DNS:api.example.com");
    expect(cert.checkHost("other.example.com")).toBeUndefined();
    expect(cert.ca).toBe(false);
    const days = (leaf.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29);
    expect(days).toBeLessThanOrEqual(30);
    expect(statSync(join(dir, "leaves", "api.example.com.pem")).mode & 0o777).toBe(0o600);
  });

  it("mints once for concurrent requests, then serves from memory and, after a restart, from disk", async () => {
    const minted: string[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => void minted.push(line) });
    const ca = await CertificateAuthority.open(dir, { log });
    const [a, b, c] = await Promise.all([ca.leafFor("a.example"), ca.leafFor("a.example"), ca.leafFor("A.EXAMPLE")]);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(await ca.leafFor("a.example")).toBe(a);
    expect(minted).toHaveLength(1);
    const reopened = await CertificateAuthority.open(dir, { log });
    expect((await reopened.leafFor("a.example")).certPem).toBe(a.certPem);
    expect(minted).toHaveLength(1);
  });

  it("replaces a damaged CA, and does not serve the old CA's leaves", async () => {
    const ca = await CertificateAuthority.open(dir);
    const old = await ca.leafFor("a.example");
    writeFileSync(join(dir, "ca.crt"), "garbage");
    const fresh = await CertificateAuthority.open(dir, { log: pino({ level: "silent" }) });
    expect(fresh.certificatePem).not.toBe(ca.certificatePem);
    const leaf = await fresh.leafFor("a.example");
    expect(leaf.certPem).not.toBe(old.certPem);
    expect(new X509Certificate(leaf.certPem).verify(new X509Certificate(fresh.certificatePem).publicKey)).toBe(true);
  });

  it("keeps the number of stored leaves bounded", async () => {
    const ca = await CertificateAuthority.open(dir, { maxStoredLeaves: 3, maxCachedLeaves: 2 });
    for (const h of ["a", "b", "c", "d", "e"]) await ca.leafFor(`${h}.example`);
    expect(readdirSync(join(dir, "leaves")).length).toBeLessThanOrEqual(3);
    expect((await ca.leafFor("e.example")).host).toBe("e.example");
  });

  it("refuses names a certificate cannot be made for", async () => {
    const ca = await CertificateAuthority.open(dir);
    for (const bad of ["", "a..b", "-a.example", "10.0.0.1", "a.example\nsubjectAltName=DNS:evil", "*.example.com", "a b.example"]) {
      await expect(ca.leafFor(bad)).rejects.toThrow(/not a host name/);
    }
  });
});
