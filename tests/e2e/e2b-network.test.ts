import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionOpts, Sandbox as E2bSandbox, SandboxOpts } from "e2b-2.51";
import { issueE2bKey, startTestDaemon, type TestDaemon } from "./harness.js";
import { startTestInternet, type TestInternet } from "./test-internet.js";

const load = () => import("e2b-2.51");
type E2bSdk = Awaited<ReturnType<typeof load>>;

/** The unmodified e2b SDK (2.51) with network settings, against the test internet. */
describe("the e2b SDK's network settings against Stasis", () => {
  let inet: TestInternet;
  let daemon: TestDaemon;
  let sdk: E2bSdk;
  const conn: ConnectionOpts = {};
  const made: E2bSandbox[] = [];
  const caFile = `/tmp/stasis-inet-ca-${process.pid}-e2b.pem`;

  const create = async (opts: SandboxOpts) => {
    const s = await sdk.Sandbox.create("base", { ...conn, timeoutMs: 120_000, ...opts });
    made.push(s);
    return s;
  };
  /** curl's HTTP status for a URL from inside (000: no connection), trusting the test internet's CA as well. */
  const status = async (s: E2bSandbox, url: string) => {
    await s.files.write("/tmp/inet-ca.pem", inet.caPem);
    const r = await s.commands.run(`cat /etc/ssl/certs/ca-certificates.crt /tmp/inet-ca.pem > /tmp/all.pem; curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert /tmp/all.pem ${url} || true`);
    return r.stdout.trim();
  };

  beforeAll(async () => {
    inet = await startTestInternet();
    writeFileSync(caFile, inet.caPem);
    daemon = await startTestDaemon({ STASIS_NETWORK_OPEN: inet.cidr, STASIS_DNS_UPSTREAM: inet.dns, STASIS_EGRESS_EXTRA_CA: caFile });
    sdk = await load();
    Object.assign(conn, { apiKey: await issueE2bKey(daemon, "net"), apiUrl: daemon.url, sandboxUrl: daemon.url });
  });
  afterAll(async () => {
    await Promise.all(made.map((s) => s.kill().catch(() => {})));
    await daemon?.destroy();
    await inet?.close();
  });

  it("allowInternetAccess: false reaches nothing; the default reaches the internet; updateNetwork changes it", async () => {
    const [web1] = inet.names as [string];
    const off = await create({ allowInternetAccess: false });
    expect(await status(off, `http://${web1}/`)).toBe("000");
    const on = await create({});
    expect(await status(on, `http://${web1}/`)).toBe("200");
    await on.updateNetwork({ allowInternetAccess: false });
    expect(await status(on, `http://${inet.primary}/`)).toBe("000");
    await on.updateNetwork({});
    expect(await status(on, `http://${inet.primary}/`)).toBe("200");
  });

  it("network.allowOut with everything else denied reaches only the listed name", async () => {
    const [web1, web2] = inet.names as [string, string];
    const s = await create({ network: { allowOut: [web1], denyOut: [sdk.ALL_TRAFFIC] } });
    expect(await status(s, `https://${web1}/`)).toBe("200");
    expect(await status(s, `http://${web2}/`)).toBe("000");
    expect(await status(s, `--resolve ${web2}:80:${inet.primary} http://${web2}/`)).toBe("403");
    expect(await status(s, `http://${inet.secondary}/`)).not.toBe("200");
  });

  it("a header rules transform is set on requests to its host only, over HTTPS", async () => {
    const [web1, web2] = inet.names as [string, string];
    const s = await create({ network: { rules: { [web1]: [{ transform: { headers: { "X-Stasis-Test": "injected", Authorization: "Bearer from-rule" } } }] } } });
    const r = await s.commands.run(`curl -sS -H 'Authorization: Bearer from-sandbox' https://${web1}/ruled && curl -sS -k -H 'Authorization: Bearer from-sandbox' https://${web2}/plain`);
    expect(r.exitCode, r.stderr).toBe(0);
    const ruled = inet.requests().find((q) => q.url === "/ruled");
    expect(ruled?.headers).toMatchObject({ "x-stasis-test": "injected", authorization: "Bearer from-rule" });
    const other = inet.requests().find((q) => q.url === "/plain");
    expect(other?.headers["x-stasis-test"]).toBeUndefined();
    expect(other?.headers.authorization).toBe("Bearer from-sandbox");
  });

  it("getHost(port) gives a host the SDK's user can fetch; allowPublicTraffic: false needs the traffic access token", async () => {
    const serve = async (s: E2bSandbox) => {
      await s.commands.run("cd /tmp && python3 -m http.server 8000 >/dev/null 2>&1", { background: true });
      for (let i = 0; i < 50; i++) {
        if ((await s.commands.run("cat /proc/net/tcp")).stdout.includes(":1F40 00000000:0000 0A")) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const open = await create({});
    await serve(open);
    const host = open.getHost(8000);
    expect(host).toBe(`8000-${open.sandboxId}.localhost:${new URL(daemon.url).port}`);
    expect((await fetch(`http://${host}/`)).status).toBe(200);
    const closed = await create({ network: { allowPublicTraffic: false } });
    await serve(closed);
    const url = `http://${closed.getHost(8000)}/`;
    expect((await fetch(url)).status).toBe(401);
    expect(closed.trafficAccessToken).toBeTruthy();
    expect((await fetch(url, { headers: { "e2b-traffic-access-token": closed.trafficAccessToken! } })).status).toBe(200);
  });
});
