import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";
import { startTestInternet, type TestInternet } from "./test-internet.js";

/**
 * Fetches a URL inside the sandbox with python, optionally connecting to another address than the name
 * resolves to (a forged Host or SNI), and prints the reply's body or FAIL.
 */
const FETCH = `
import http.client, json, socket, ssl, sys
url, connect_to = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
scheme, _, rest = url.partition("://")
host = rest.split("/")[0]
try:
    if scheme == "https":
        ctx = ssl.create_default_context(cafile="/tmp/inet-ca.pem")
        raw = socket.create_connection((connect_to or host, 443), timeout=5)
        sock = ctx.wrap_socket(raw, server_hostname=host)
        conn = http.client.HTTPSConnection(host, timeout=5, context=ctx)
        conn.sock = sock
    else:
        conn = http.client.HTTPConnection(connect_to or host, 80, timeout=5)
    conn.request("GET", "/", headers={"Host": host})
    r = conn.getresponse()
    print(r.status, r.read().decode())
except Exception as e:
    print("FAIL", type(e).__name__, e)
`;

describe.each(["gvisor", "crun"] as const)("names, DNS and the egress proxy on %s", (runtime) => {
  let inet: TestInternet;
  let daemon: TestDaemon;
  const caFile = `/tmp/stasis-inet-ca-${process.pid}-${runtime}.pem`;

  const make = async (network?: { internet?: boolean; allowOut?: string[]; denyOut?: string[] }) => {
    const s = await Sandbox.create({ runtime, ...(network ? { network } : {}), ...daemon.conn });
    await s.files.write("/tmp/fetch.py", FETCH);
    await s.files.write("/tmp/inet-ca.pem", inet.caPem);
    return s;
  };
  const fetchIn = async (s: Sandbox, url: string, connectTo = "") => (await s.commands.run(`python3 /tmp/fetch.py ${url} ${connectTo}`, { timeoutMs: 30_000 })).stdout.trim();
  const served = (reply: string) => (reply.startsWith("200 ") ? (JSON.parse(reply.slice(4)) as { local: string; host: string }) : null);

  beforeAll(async () => {
    inet = await startTestInternet();
    writeFileSync(caFile, inet.caPem);
    daemon = await startTestDaemon({ STASIS_NETWORK_OPEN: inet.cidr, STASIS_DNS_UPSTREAM: inet.dns, STASIS_EGRESS_EXTRA_CA: caFile });
  });
  afterAll(async () => {
    await daemon?.destroy();
    await inet?.close();
  });

  it("resolves names through the daemon's DNS and reaches them by default, over HTTP and HTTPS", async () => {
    const s = await make();
    const [web1] = inet.names;
    expect((await s.commands.run(`python3 -c "import socket; print(socket.gethostbyname('${web1}'))"`)).stdout.trim()).toBe(inet.primary);
    expect(served(await fetchIn(s, `http://${web1}/`))?.host).toBe(web1);
    expect(served(await fetchIn(s, `https://${web1}/`))?.local).toBe(inet.primary);
    await s.kill();
  });

  it("an allow list of one name reaches that name, not a second name on the same address, nor the name through a forged Host or SNI", async () => {
    const [web1, web2] = inet.names as [string, string];
    const s = await make({ allowOut: [web1] });
    expect(served(await fetchIn(s, `http://${web1}/`))?.host).toBe(web1);
    expect(served(await fetchIn(s, `https://${web1}/`))?.host).toBe(web1);
    // Not resolved (an allow list of names resolves those names only), nor reached on the shared address.
    expect(await fetchIn(s, `http://${web2}/`)).toMatch(/^FAIL gaierror/);
    expect(await fetchIn(s, `http://${web2}/`, inet.primary)).toMatch(/^403 /);
    expect(await fetchIn(s, `https://${web2}/`, inet.primary)).toMatch(/^FAIL/);
    // Sent to the other address with the allowed name: the proxy dials the name's own address.
    expect(served(await fetchIn(s, `http://${web1}/`, inet.secondary))?.local).toBe(inet.primary);
    expect(served(await fetchIn(s, `https://${web1}/`, inet.secondary))?.local).toBe(inet.primary);
    // By address alone: nothing allows it.
    expect(await fetchIn(s, `http://${inet.secondary}/`)).toMatch(/^(403 |FAIL)/);
    await s.kill();
  });

  it("a denied name is refused (DNS says it does not exist), others are reached; internet: false gets no DNS", async () => {
    const [web1, web2] = inet.names as [string, string];
    const s = await make({ denyOut: [web2] });
    expect(served(await fetchIn(s, `http://${web1}/`))?.host).toBe(web1);
    expect(await fetchIn(s, `http://${web2}/`)).toMatch(/^FAIL/);
    expect(await fetchIn(s, `http://${web2}/`, inet.primary)).toMatch(/^403 /);
    const off = await make({ internet: false });
    expect((await off.commands.run(`python3 -c "import socket; socket.gethostbyname('${web1}')"`)).exitCode).not.toBe(0);
    await Promise.all([s.kill(), off.kill()]);
  });
});
