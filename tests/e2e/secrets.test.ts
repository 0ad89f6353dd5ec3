import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox, Secrets } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";
import { startTestInternet, type TestInternet } from "./test-internet.js";

const VALUE = `sk-live-${Date.now().toString(36)}-a1b2c3d4e5f6`;

/** GET with the Authorization header set to `Bearer $TOKEN`, by curl (which reads CURL_CA_BUNDLE) or node (NODE_EXTRA_CA_CERTS). */
describe("secrets injected at the boundary (gvisor)", () => {
  let inet: TestInternet;
  let daemon: TestDaemon;
  let sandbox: Sandbox;
  const caFile = `/tmp/stasis-inet-ca-${process.pid}-secrets.pem`;

  beforeAll(async () => {
    inet = await startTestInternet();
    writeFileSync(caFile, inet.caPem);
    daemon = await startTestDaemon({ STASIS_NETWORK_OPEN: inet.cidr, STASIS_DNS_UPSTREAM: inet.dns, STASIS_EGRESS_EXTRA_CA: caFile, STASIS_LOG_LEVEL: "debug" });
    await Secrets.set("API_TOKEN", { value: VALUE, hosts: [inet.names[0]!], ...daemon.conn });
    sandbox = await Sandbox.create({ runtime: "gvisor", secrets: ["API_TOKEN"], ...daemon.conn });
  });
  afterAll(async () => {
    await sandbox?.kill().catch(() => {});
    await daemon?.destroy();
    await inet?.close();
  });

  it("the sandbox holds a placeholder; the secret's host receives the value, over HTTPS (curl and node) and HTTP", async () => {
    const [web1] = inet.names as [string];
    const placeholder = (await sandbox.commands.run("printenv API_TOKEN")).stdout.trim();
    expect(placeholder).toMatch(/^stasis_secret_API_TOKEN_[0-9a-f]{32}$/);
    expect(sandbox.info.network?.secrets).toEqual(["API_TOKEN"]);
    const curl = await sandbox.commands.run(`curl -sS -H "Authorization: Bearer $API_TOKEN" https://${web1}/`);
    expect(curl.exitCode, curl.stderr).toBe(0);
    const node = await sandbox.commands.run(`node -e "fetch('https://${web1}/n', { headers: { 'x-api-key': process.env.API_TOKEN } }).then(r => r.text()).then(console.log)"`);
    expect(node.stdout).toContain(inet.primary);
    await sandbox.commands.run(`curl -sS -H "Authorization: Bearer $API_TOKEN" http://${web1}/plain`);
    const seen = inet.requests().filter((r) => r.host === web1);
    expect(seen.map((r) => r.headers.authorization ?? r.headers["x-api-key"])).toEqual([`Bearer ${VALUE}`, VALUE, `Bearer ${VALUE}`]);
    // Audit: each use with sandbox, secret, host; never the value.
    const db = new Database(join(daemon.dataDir, "stasis.db"), { readonly: true });
    const uses = db.prepare("SELECT * FROM secret_uses").all() as Record<string, unknown>[];
    db.close();
    expect(uses.length).toBeGreaterThanOrEqual(3);
    expect(uses[0]).toMatchObject({ sandbox_id: sandbox.id, secret_name: "API_TOKEN", host: web1 });
    expect(JSON.stringify(uses)).not.toContain(VALUE);
  });

  it("any other host gets only the placeholder", async () => {
    const [, web2] = inet.names as [string, string];
    await sandbox.files.write("/tmp/inet-ca.pem", inet.caPem);
    await sandbox.commands.run(`curl -sS --cacert /tmp/inet-ca.pem -H "Authorization: Bearer $API_TOKEN" https://${web2}/ http://${web2}/`);
    const other = inet.requests().filter((r) => r.host === web2);
    expect(other).toHaveLength(2);
    for (const r of other) expect(r.headers.authorization).toMatch(/^Bearer stasis_secret_API_TOKEN_/);
  });

  it("the value appears nowhere in the sandbox, its API replies, the daemon's logs, or its hibernation image", async () => {
    // Looked for from outside: a search run inside would itself put the value into the sandbox's memory.
    const inside = await sandbox.commands.run(`env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo done`);
    expect(inside.stdout).toContain("API_TOKEN=stasis_secret_");
    expect(inside.stdout).not.toContain(VALUE);
    const replies = JSON.stringify([await sandbox.refresh(), await Secrets.list(daemon.conn), await Secrets.get("API_TOKEN", daemon.conn)]);
    expect(replies).not.toContain(VALUE);
    await sandbox.hibernate();
    const image = join(daemon.dataDir, "sandboxes", sandbox.id);
    // grep -r exits 1 when nothing matches: the value is in no file of the sandbox's folder (memory image, disk, logs).
    // Asynchronously: a blocked event loop would leave the SDK's kept-alive connection to be reused after the daemon closed it.
    const found = await new Promise<string>((resolve) => {
      execFile("grep", ["-r", "-l", "-a", "-F", VALUE, image], { encoding: "utf8", maxBuffer: 1 << 20 }, (err, stdout) => resolve(err && (err as { code?: number }).code !== 1 ? String(err) : stdout));
    });
    expect(found.split("\n").filter(Boolean).map((f) => f.slice(image.length))).toEqual([]);
    expect(daemon.logs.join("\n")).not.toContain(VALUE);
    expect(readFileSync(join(daemon.dataDir, "stasis.db")).includes(Buffer.from(VALUE))).toBe(false);
    // Woken, the placeholder still works.
    await sandbox.commands.run(`curl -sS -H "Authorization: Bearer $API_TOKEN" https://${inet.names[0]}/again`);
    expect(inet.requests().at(-1)?.headers.authorization).toBe(`Bearer ${VALUE}`);
  });
});
