import { createHash } from "node:crypto";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request } from "node:http";
import { Domains, Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

/** A server inside the sandbox: text, SSE, a big body each way (hashed), and an upgrade that echoes bytes. */
const SERVER = `
const http = require("http"), crypto = require("crypto");
const s = http.createServer((req, res) => {
  if (req.url === "/sse") {
    res.writeHead(200, { "content-type": "text/event-stream" });
    let n = 0;
    const t = setInterval(() => { res.write("data: " + ++n + "\\n\\n"); if (n === 5) { clearInterval(t); res.end(); } }, 200);
    return;
  }
  if (req.url.startsWith("/blob/")) {
    let left = Number(req.url.slice(6)); const chunk = Buffer.alloc(1 << 20, 7);
    res.writeHead(200, { "content-length": String(left) });
    const pump = () => { while (left > 0) { const n = Math.min(left, chunk.length); left -= n; if (!res.write(chunk.subarray(0, n))) return res.once("drain", pump); } res.end(); };
    return pump();
  }
  if (req.url === "/sink") {
    const h = crypto.createHash("sha256"); let n = 0;
    req.on("data", (d) => { h.update(d); n += d.length; });
    return req.on("end", () => res.end(JSON.stringify({ bytes: n, sha256: h.digest("hex") })));
  }
  res.end(JSON.stringify({ path: req.url, host: req.headers.host, forwardedFor: req.headers["x-forwarded-for"] ?? null, token: req.headers["x-stasis-preview-token"] ?? null }));
});
s.on("upgrade", (req, socket) => { socket.write("HTTP/1.1 101 Switching Protocols\\r\\nupgrade: echo\\r\\nconnection: Upgrade\\r\\n\\r\\n"); socket.pipe(socket); });
s.listen(8000, "0.0.0.0");
`;

async function upgradeEcho(url: string, token: string, message: string, holdMs = 0): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), "127.0.0.1", () => socket.write(`GET / HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Stasis-Preview-Token: ${token}\r\n\r\n`));
    let got = "";
    let upgraded = false;
    socket.on("data", (d) => {
      got += d.toString();
      if (!upgraded && got.includes("\r\n\r\n")) {
        if (!got.startsWith("HTTP/1.1 101")) return reject(new Error(`no upgrade: ${got.slice(0, 200)}`));
        upgraded = true;
        got = got.slice(got.indexOf("\r\n\r\n") + 4);
        setTimeout(() => socket.write(message), holdMs);
      }
      if (upgraded && got.length >= message.length) {
        socket.destroy();
        resolve(got);
      }
    });
    socket.on("error", reject);
  });
}

/** A GET to the daemon with a Host header of our choosing (fetch cannot set it). */
function getWithHost(daemonUrl: string, host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const u = new URL(daemonUrl);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: Number(u.port), path, headers: { host, ...headers } }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("preview URLs of a sandbox's ports (gvisor)", () => {
  let daemon: TestDaemon;
  let sandbox: Sandbox;
  let url: string;
  let token: string;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    sandbox = await Sandbox.create({ runtime: "gvisor", idleTimeoutMs: 3_000, ...daemon.conn });
    await sandbox.files.write("/tmp/server.js", SERVER);
    await sandbox.commands.start("node /tmp/server.js", { timeoutMs: 0 });
    for (let i = 0; i < 100 && !(await sandbox.ports()).some((p) => p.port === 8000); i++) await new Promise((r) => setTimeout(r, 100));
    url = await sandbox.getUrl(8000);
    token = (await sandbox.getPreview()).token;
  }, 60_000);
  afterAll(async () => {
    await sandbox?.kill().catch(() => {});
    await daemon?.destroy();
  });

  it("lists the listening port with its URL on <port>-<id>.localhost", async () => {
    expect(url).toBe(`http://8000-${sandbox.id}.localhost:${new URL(daemon.url).port}/`.replace(/\/$/, ""));
    expect(await sandbox.ports()).toContainEqual({ port: 8000, url });
  });

  it("is private: refused without the token (nor another sandbox's), served with it, by host name and by E2B's headers", async () => {
    expect((await fetch(`${url}/x`)).status).toBe(401);
    const other = await Sandbox.create({ runtime: "crun", ...daemon.conn });
    const otherToken = (await other.getPreview()).token;
    expect((await fetch(`${url}/x`, { headers: { "x-stasis-preview-token": otherToken } })).status).toBe(401);
    await other.kill();
    const res = await fetch(`${url}/hello?a=1`, { headers: { "x-stasis-preview-token": token } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { path: string; host: string; forwardedFor: string; token: string | null };
    expect(body).toMatchObject({ path: "/hello?a=1", host: `8000-${sandbox.id}.localhost:${new URL(daemon.url).port}`, token: null });
    expect(body.forwardedFor).toContain("127.0.0.1");
    const byHeaders = await fetch(`${daemon.url}/via-headers`, { headers: { "e2b-sandbox-id": sandbox.id, "e2b-sandbox-port": "8000", "e2b-traffic-access-token": token } });
    expect(((await byHeaders.json()) as { path: string }).path).toBe("/via-headers");
    // Nothing on the port: a clear 502.
    expect((await fetch(url.replace("8000-", "8001-"), { headers: { "x-stasis-preview-token": token } })).status).toBe(502);
    // A preview host never reaches the API.
    expect((await fetch(`${url}/v1/sandboxes`, { headers: { authorization: `Bearer ${daemon.apiKey}`, "x-stasis-preview-token": token } }).then((r) => r.json())) as { path: string }).toMatchObject({ path: "/v1/sandboxes" });
  });

  it("a signed URL sets a cookie that opens the port; an expired one is refused; public needs no token", async () => {
    const signed = await sandbox.signUrl(8000);
    const first = await fetch(signed.url, { redirect: "manual" });
    expect(first.status).toBe(303);
    const cookie = (first.headers.get("set-cookie") ?? "").split(";")[0]!;
    expect((await fetch(`${url}/with-cookie`, { headers: { cookie } })).status).toBe(200);
    const short = await sandbox.signUrl(8000, 1);
    await new Promise((r) => setTimeout(r, 2_100));
    expect((await fetch(short.url, { redirect: "manual" })).status).toBe(401);
    await sandbox.setPreview({ public: true });
    expect((await fetch(`${url}/open`)).status).toBe(200);
    await sandbox.setPreview({ public: false, rotateToken: true });
    expect((await fetch(`${url}/with-cookie`, { headers: { cookie } })).status).toBe(401);
    token = (await sandbox.getPreview()).token;
  });

  it("streams SSE as it comes, and carries 100 MiB each way byte for byte", async () => {
    const sse = await fetch(`${url}/sse`, { headers: { "x-stasis-preview-token": token } });
    const reader = sse.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("data: 1");
    let all = new TextDecoder().decode(first.value);
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      all += new TextDecoder().decode(next.value);
    }
    expect(all.match(/data: \d/g)).toHaveLength(5);
    const size = 100 * 1024 * 1024;
    const down = Buffer.from(await (await fetch(`${url}/blob/${size}`, { headers: { "x-stasis-preview-token": token } })).arrayBuffer());
    expect(down.length).toBe(size);
    expect(down.every((b) => b === 7)).toBe(true);
    const payload = Buffer.alloc(size, 3);
    const up = (await (await fetch(`${url}/sink`, { method: "POST", body: payload, headers: { "x-stasis-preview-token": token } })).json()) as { bytes: number; sha256: string };
    expect(up).toEqual({ bytes: size, sha256: createHash("sha256").update(payload).digest("hex") });
  }, 120_000);

  it("tunnels an upgrade (WebSocket-style), which keeps the sandbox awake past its idle timeout", async () => {
    expect(await upgradeEcho(url, token, "quick", 0)).toBe("quick");
    expect(await upgradeEcho(url, token, "ping over the tunnel", 4_000)).toBe("ping over the tunnel");
    expect((await sandbox.refresh()).state).toBe("running");
  }, 30_000);

  it("wakes a paused and a hibernated sandbox for a plain request, without error", async () => {
    await sandbox.pause();
    expect((await fetch(`${url}/after-pause`, { headers: { "x-stasis-preview-token": token } })).status).toBe(200);
    await sandbox.hibernate();
    expect((await sandbox.refresh()).state).toBe("hibernated");
    const many = await Promise.all(Array.from({ length: 5 }, (_, i) => fetch(`${url}/after-hibernate-${i}`, { headers: { "x-stasis-preview-token": token } }).then(async (r) => (r.status === 200 ? 200 : `${r.status} ${await r.text()}`))));
    expect(many).toEqual([200, 200, 200, 200, 200]);
  }, 60_000);

  it("serves a custom domain mapped to a port, with the sandbox's access rules, until it is removed", async () => {
    const host = `app-${sandbox.id.slice(4, 10)}.stasis-test.example`;
    await Domains.create({ host, sandboxId: sandbox.id, port: 8000, ...daemon.conn });
    expect((await Domains.list(daemon.conn)).map((d) => d.host)).toContain(host);
    expect((await getWithHost(daemon.url, host, "/mine")).status).toBe(401);
    const served = await getWithHost(daemon.url, `${host}:443`, "/mine", { "x-stasis-preview-token": token });
    expect(served.status).toBe(200);
    expect(JSON.parse(served.body)).toMatchObject({ path: "/mine" });
    await Domains.delete(host, daemon.conn);
    expect((await getWithHost(daemon.url, host, "/mine", { "x-stasis-preview-token": token })).status).toBe(404);
    // Names under the preview domain are refused: they are <port>-<id> routes already.
    await expect(Domains.create({ host: "x.localhost", sandboxId: sandbox.id, port: 8000, ...daemon.conn })).rejects.toThrow(/preview domain/);
  });
});
