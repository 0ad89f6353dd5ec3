import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync, readFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { covers, pairsIn, TlsCertificates } from "./tls-certificates.js";
import { startListeners } from "./listeners.js";

const root = mkdtempSync(join(tmpdir(), "stasis-tls-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const log = pino({ level: "silent" });

/** A self-signed certificate for `names` (the first is the CN), written as `<base>.crt` / `<base>.key`. */
function makeCert(base: string, names: string[], days = 30): { cert: string; key: string } {
  const cert = `${base}.crt`;
  const key = `${base}.key`;
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", String(days), "-subj", `/CN=${names[0]}`, "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`], { stdio: "ignore" });
  return { cert, key };
}

function served(certs: TlsCertificates, host: string): string[] {
  const context = certs.contextFor(host);
  if (!context) return [];
  // The context's certificate, read back through a throwaway TLS server would be heavy; the names suffice.
  const pem = (context.context as unknown as { getCertificate(): Buffer | null }).getCertificate();
  return pem ? new X509Certificate(pem).subjectAltName!.split(", ").map((s) => s.slice(4)) : [];
}

describe("TLS certificates", () => {
  it("a wildcard stands for exactly one label", () => {
    expect(covers("*.example.com", "a.example.com")).toBe(true);
    expect(covers("*.example.com", "example.com")).toBe(false);
    expect(covers("*.example.com", "a.b.example.com")).toBe(false);
    expect(covers("app.example.com", "app.example.com")).toBe(true);
  });

  it("finds pairs in the layouts tools write, one folder down", () => {
    const dir = join(root, "layouts");
    mkdirSync(join(dir, "example.org"), { recursive: true });
    mkdirSync(join(dir, "deep", "er", "x"), { recursive: true });
    makeCert(join(dir, "plain"), ["plain.test"]);
    const mk = makeCert(join(dir, "mk"), ["mk.test"]);
    writeFileSync(join(dir, "mk.pem"), readFileSync(mk.cert));
    writeFileSync(join(dir, "mk-key.pem"), readFileSync(mk.key));
    const le = makeCert(join(dir, "example.org", "tmp"), ["example.org"]);
    writeFileSync(join(dir, "example.org", "fullchain.pem"), readFileSync(le.cert));
    writeFileSync(join(dir, "example.org", "privkey.pem"), readFileSync(le.key));
    makeCert(join(dir, "deep", "er", "x", "too-deep"), ["deep.test"]);
    writeFileSync(join(dir, "lonely.crt"), "no key beside it");
    const found = pairsIn(dir).map((p) => [p.cert.slice(dir.length + 1), p.key.slice(dir.length + 1)]);
    expect(found).toEqual(
      expect.arrayContaining([
        ["plain.crt", "plain.key"],
        ["mk.crt", "mk.key"],
        ["mk.pem", "mk-key.pem"],
        ["example.org/fullchain.pem", "example.org/privkey.pem"],
        ["example.org/tmp.crt", "example.org/tmp.key"],
      ]),
    );
    expect(found.some(([c]) => c!.includes("too-deep") || c!.includes("lonely"))).toBe(false);
  });

  it("serves each host the certificate naming it, exact before wildcard, the default otherwise, and skips bad pairs", () => {
    const dir = join(root, "pick");
    mkdirSync(dir);
    const fallback = makeCert(join(root, "default"), ["default.test"]);
    makeCert(join(dir, "wild"), ["*.preview.test"]);
    makeCert(join(dir, "exact"), ["app.preview.test", "shop.test"]);
    const bad = makeCert(join(dir, "bad"), ["bad.test"]);
    writeFileSync(bad.key, readFileSync(join(dir, "wild.key"))); // a key of another certificate
    const certs = new TlsCertificates({ certFile: fallback.cert, keyFile: fallback.key, dir, port: 0 }, log);
    expect(served(certs, "8000-sbx_x.preview.test")).toEqual(["*.preview.test"]);
    expect(served(certs, "APP.preview.test")).toEqual(["app.preview.test", "shop.test"]);
    expect(served(certs, "shop.test")).toEqual(["app.preview.test", "shop.test"]);
    expect(served(certs, "bad.test")).toEqual(["default.test"]);
    expect(served(certs, "other.test")).toEqual(["default.test"]);
    expect(certs.covered("1-sbx.preview.test")).toBe(true);
    expect(certs.covered("1-sbx.elsewhere.test")).toBe(false);
  });

  it("a default pair that cannot be loaded stops the start with the reason", () => {
    const c = makeCert(join(root, "mismatch"), ["m.test"]);
    const other = makeCert(join(root, "other"), ["o.test"]);
    expect(() => new TlsCertificates({ certFile: c.cert, keyFile: other.key, dir: null, port: 0 }, log)).toThrow(/STASIS_TLS_CERT.*key values mismatch/);
  });

  it("picks up a renewed certificate without a restart, the one valid longest winning", async () => {
    const dir = join(root, "renew");
    mkdirSync(dir);
    makeCert(join(dir, "old"), ["renew.test"], 10);
    const certs = new TlsCertificates({ certFile: null, keyFile: null, dir, port: 0 }, log);
    const before = certs.contextFor("renew.test");
    makeCert(join(dir, "new"), ["renew.test"], 90);
    // The folder is looked at again at most every 10 s: age the last look.
    (certs as unknown as { checkedAt: number }).checkedAt = 0;
    const after = certs.contextFor("renew.test");
    expect(after).not.toBe(before);
    const notAfter = new X509Certificate((after!.context as unknown as { getCertificate(): Buffer }).getCertificate()).validTo;
    expect(Date.parse(notAfter)).toBeGreaterThan(Date.now() + 80 * 86_400_000);
    // Unchanged files: the same contexts, nothing re-read.
    utimesSync(join(dir, "new.crt"), new Date(), new Date(Date.now() - 1000));
    (certs as unknown as { checkedAt: number }).checkedAt = 0;
    const again = certs.contextFor("renew.test");
    (certs as unknown as { checkedAt: number }).checkedAt = 0;
    expect(certs.contextFor("renew.test")).toBe(again);
  });
});

describe("HTTPS listener", () => {
  it("serves the same requests over HTTPS with the certificate for the requested name", async () => {
    const dir = join(root, "serve");
    mkdirSync(dir);
    const wild = makeCert(join(dir, "wild"), ["*.preview.test"]);
    const listeners = await startListeners({
      host: "127.0.0.1",
      port: 0,
      tls: { certFile: null, keyFile: null, dir, port: 0 },
      log,
      onRequest: (req, res) => res.end(`${req.headers.host} ${"encrypted" in req.socket ? "https" : "http"}`),
      onUpgrade: (_req, socket) => socket.destroy(),
    });
    try {
      const host = "8000-sbx_abc.preview.test";
      const answer = await new Promise<{ body: string; names: string | undefined }>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: listeners.httpsPort!, servername: host, headers: { host }, ca: readFileSync(wild.cert) }, (res) => {
          let body = "";
          const names = (res.socket as TLSSocket).getPeerCertificate().subjectaltname;
          res.on("data", (c: Buffer) => (body += c.toString()));
          res.on("end", () => resolve({ body, names }));
        });
        req.on("error", reject);
        req.end();
      });
      expect(answer).toEqual({ body: `${host} https`, names: "DNS:*.preview.test" });
      const plain = await fetch(`http://127.0.0.1:${listeners.port}/`);
      expect(await plain.text()).toBe(`127.0.0.1:${listeners.port} http`);
    } finally {
      await listeners.close();
    }
  });
});
