import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request } from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Domains, PortClosedError, Sandbox } from "@stasis/sdk";
import { CLI, startTestDaemon, type TestDaemon } from "./harness.js";

const ECHO = `
import socketserver
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 7000), Echo).serve_forever()
`;

function makeCert(base: string, name: string): string {
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${base}.key`, "-out", `${base}.crt`, "-days", "2", "-subj", `/CN=${name}`, "-addext", `subjectAltName=DNS:${name}`], { stdio: "ignore" });
  return `${base}.crt`;
}

/** An HTTPS GET to the daemon's HTTPS port with a host name (SNI and Host), trusting `ca`. */
function httpsGet(port: number, host: string, path: string, ca: Buffer[], headers: Record<string, string> = {}): Promise<{ status: number; body: string; certName: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, servername: host, headers: { host, ...headers }, ca }, (res) => {
      const certName = (res.socket as TLSSocket).getPeerCertificate().subjectaltname;
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, certName }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Writes a line and reads the echoed line back. */
function echo(socket: Duplex, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes("\n")) {
        socket.off("data", onData);
        resolve(got.trim());
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
    socket.write(`${line}\n`);
  });
}

describe("a Python server over HTTPS with the daemon's certificates and by E2B's headers, custom domains over TLS, and raw TCP port-forwards (crun)", () => {
  const certDir = mkdtempSync(join(tmpdir(), "stasis-e2e-tls-"));
  const wildcard = makeCert(join(certDir, "wildcard"), "*.preview.test");
  const shop = makeCert(join(certDir, "shop"), "shop.stasis-test.example");
  const ca = [readFileSync(wildcard), readFileSync(shop)];
  let daemon: TestDaemon;
  let sandbox: Sandbox;
  let token: string;
  let httpsPort: number;

  beforeAll(async () => {
    daemon = await startTestDaemon({ STASIS_PREVIEW_DOMAIN: "preview.test", STASIS_TLS_DIR: certDir, STASIS_HTTPS_PORT: "0" });
    sandbox = await Sandbox.create({ runtime: "crun", ...daemon.conn });
    await sandbox.files.write("/srv/index.html", "hello over tls\n");
    await sandbox.files.write("/tmp/echo.py", ECHO);
    await sandbox.commands.start("cd /srv && exec python3 -m http.server 8000", { timeoutMs: 0 });
    await sandbox.commands.start("exec python3 /tmp/echo.py", { timeoutMs: 0 });
    for (let i = 0; i < 100; i++) {
      const ports = (await sandbox.ports()).map((p) => p.port);
      if (ports.includes(8000) && ports.includes(7000)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    token = (await sandbox.getPreview()).token;
    httpsPort = Number(new URL(await sandbox.getUrl(8000)).port);
  }, 60_000);
  afterAll(async () => {
    await sandbox?.kill().catch(() => {});
    await daemon?.destroy();
    rmSync(certDir, { recursive: true, force: true });
  });

  it("hands out https preview URLs when a certificate covers the preview domain, and serves them with it", async () => {
    const url = await sandbox.getUrl(8000);
    expect(url).toMatch(new RegExp(`^https://8000-${sandbox.id}\\.preview\\.test:\\d+$`));
    const host = new URL(url).hostname;
    expect((await httpsGet(httpsPort, host, "/index.html", ca)).status).toBe(401);
    const served = await httpsGet(httpsPort, host, "/index.html", ca, { "x-stasis-preview-token": token });
    expect(served).toEqual({ status: 200, body: "hello over tls\n", certName: "DNS:*.preview.test" });
    // The same Python server by E2B's headers, on the plain HTTP port.
    const byHeaders = await fetch(`${daemon.url}/index.html`, { headers: { "e2b-sandbox-id": sandbox.id, "e2b-sandbox-port": "8000", "e2b-traffic-access-token": token } });
    expect(await byHeaders.text()).toBe("hello over tls\n");
    // The API answers on the HTTPS port too (its name is not a preview host).
    const health = await httpsGet(httpsPort, "api.preview.test", "/healthz", ca);
    expect(health.status).toBe(200);
  });

  it("serves a custom domain with its own certificate", async () => {
    await Domains.create({ host: "shop.stasis-test.example", sandboxId: sandbox.id, port: 8000, ...daemon.conn });
    const served = await httpsGet(httpsPort, "shop.stasis-test.example", "/index.html", ca, { "x-stasis-preview-token": token });
    expect(served).toEqual({ status: 200, body: "hello over tls\n", certName: "DNS:shop.stasis-test.example" });
    await Domains.delete("shop.stasis-test.example", daemon.conn);
  });

  it("forwards raw TCP to a port through the SDK, with the API key only, and says when nothing listens", async () => {
    const socket = await sandbox.connectPort(7000);
    expect(await echo(socket, "first line")).toBe("FIRST LINE");
    expect(await echo(socket, "second")).toBe("SECOND");
    socket.destroy();
    await expect(sandbox.connectPort(7001)).rejects.toBeInstanceOf(PortClosedError);
    // The preview token is not enough: a forward takes the API key.
    const upgrade = (authorization: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${daemon.url}/v1/sandboxes/${sandbox.id}/ports/7000/connect`, { headers: { connection: "Upgrade", upgrade: "tcp", authorization } });
        req.once("response", (r) => resolve(r.statusCode ?? 0));
        req.once("upgrade", (_r, socket: Duplex) => {
          socket.destroy();
          resolve(101);
        });
        req.once("error", reject);
        req.end();
      });
    expect(await upgrade(`Bearer ${token}`)).toBe(401);
    expect(await upgrade(`Bearer ${daemon.apiKey}`)).toBe(101);
  });

  it("wakes a paused sandbox for a forwarded connection", async () => {
    await sandbox.pause();
    expect((await sandbox.refresh()).state).toBe("paused");
    const socket = await sandbox.connectPort(7000);
    expect(await echo(socket, "after pause")).toBe("AFTER PAUSE");
    socket.destroy();
    expect((await sandbox.refresh()).state).toBe("running");
  });

  it("stasis port-forward listens locally until Ctrl-C", async () => {
    const cli = spawn(process.execPath, [CLI, "port-forward", sandbox.id, "7000", "--local-port", "0", "--json", "--api-url", daemon.url, "--api-key", daemon.apiKey], { stdio: ["ignore", "pipe", "pipe"] });
    const listening = await new Promise<{ host: string; port: number }>((resolve, reject) => {
      let out = "";
      cli.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        try {
          resolve(JSON.parse(out) as { host: string; port: number });
        } catch {
          // not all of it yet
        }
      });
      cli.once("exit", (code) => reject(new Error(`stasis port-forward exited ${code}`)));
    });
    const local = connect(listening.port, listening.host);
    expect(await echo(local, "through the cli")).toBe("THROUGH THE CLI");
    local.destroy();
    const exited = new Promise<number | null>((resolve) => cli.once("exit", resolve));
    cli.kill("SIGINT");
    expect(await exited).toBe(0);
  });
});
