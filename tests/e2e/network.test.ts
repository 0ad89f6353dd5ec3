import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { networkTag, startTestDaemon, type TestDaemon } from "./harness.js";
import { startTestInternet, type TestInternet } from "./test-internet.js";

/** A Python probe: connects to each `host:port` and prints `OPEN` or `SHUT` per target. */
const PROBE = `
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((host, int(port))); print("OPEN", target)
    except Exception as e:
        print("SHUT", target, type(e).__name__)
    finally:
        s.close()
`;

/** GETs a URL from inside the sandbox; prints the reply body, or FAIL and the error. */
const FETCH = `
import sys, urllib.request, ssl
url = sys.argv[1]
headers = dict(h.split(":", 1) for h in sys.argv[2:])
ctx = ssl.create_default_context(cafile="/tmp/inet-ca.pem")
try:
    print(urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5, context=ctx).read().decode())
except Exception as e:
    print("FAIL", type(e).__name__, e)
`;

async function probe(sandbox: Sandbox, ...targets: string[]): Promise<Record<string, "OPEN" | "SHUT">> {
  const r = await sandbox.commands.run(`python3 /tmp/probe.py ${targets.join(" ")}`, { timeoutMs: 60_000 });
  const result: Record<string, "OPEN" | "SHUT"> = {};
  for (const line of r.stdout.split("\n")) {
    const [verdict, target] = line.split(" ");
    if (target && (verdict === "OPEN" || verdict === "SHUT")) result[target] = verdict;
  }
  return result;
}

const KEEP_MS = 4_000;

/** How many starts found their network kept or made it anew (stasis_network_attach_seconds_count). */
async function attachCount(daemon: TestDaemon, how: "kept" | "made"): Promise<number> {
  const scrape = await (await fetch(`${daemon.url}/metrics`)).text();
  return Number(new RegExp(`^stasis_network_attach_seconds_count\\{how="${how}"\\} (\\d+)$`, "m").exec(scrape)?.[1] ?? "0");
}

describe.each(["gvisor", "crun"] as const)("sandbox networking on %s", (runtime) => {
  let inet: TestInternet;
  let daemon: TestDaemon;

  const make = async (network?: Parameters<typeof Sandbox.create>[0] extends infer O ? (O extends { network?: infer N } ? N : never) : never) => {
    const s = await Sandbox.create({ runtime, ...(network ? { network } : {}), ...daemon.conn });
    await s.files.write("/tmp/probe.py", PROBE);
    await s.files.write("/tmp/fetch.py", FETCH);
    await s.files.write("/tmp/inet-ca.pem", inet.caPem);
    return s;
  };

  beforeAll(async () => {
    inet = await startTestInternet();
    // A hibernated sandbox keeps its network for 4 s here (10 min by default), so that both ends are seen.
    daemon = await startTestDaemon({ STASIS_NETWORK_OPEN: inet.cidr, STASIS_DNS_UPSTREAM: inet.dns, STASIS_HIBERNATED_NETWORK_KEEP_MS: String(KEEP_MS) });
  });
  afterAll(async () => {
    await daemon?.destroy();
    await inet?.close();
  });

  it("reaches the internet by default, by address", async () => {
    const s = await make();
    expect(s.info.network?.address).toMatch(/^10\.\d+\.\d+\.\d+$/);
    expect(await probe(s, `${inet.primary}:80`, `${inet.primary}:443`)).toEqual({ [`${inet.primary}:80`]: "OPEN", [`${inet.primary}:443`]: "OPEN" });
    // 1 MiB down: counted in the sandbox's metrics and in /metrics.
    const up = await s.commands.run(`python3 -c "import urllib.request; print(len(urllib.request.urlopen('http://${inet.primary}/', data=b'x' * 1048576, timeout=20).read()))"`);
    expect(up.exitCode).toBe(0);
    const m = await s.getMetrics();
    expect(m.networkSentBytes).toBeGreaterThan(1024 * 1024);
    expect(m.networkReceivedBytes).toBeGreaterThan(0);
    const scrape = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(scrape).toMatch(new RegExp(`stasis_sandbox_network_bytes\\{sandbox="${s.id}",direction="out"\\} \\d{7}`));
    await s.kill();
  });

  it("reaches nothing with internet: false", async () => {
    const s = await make({ internet: false });
    expect(await probe(s, `${inet.primary}:80`)).toEqual({ [`${inet.primary}:80`]: "SHUT" });
    await s.kill();
  });

  it("never reaches the host, another sandbox, metadata or private ranges", async () => {
    const [a, b] = await Promise.all([make(), make()]);
    await b.commands.start("python3 -m http.server 8000 --bind 0.0.0.0");
    const port = new URL(daemon.url).port;
    const gateway = a.info.network!.address!.replace(/\.(\d+)$/, (_, last: string) => `.${Number(last) - 1}`);
    const r = await probe(a, `${gateway}:${port}`, `${gateway}:22`, `${b.info.network!.address}:8000`, "169.254.169.254:80", "10.1.2.3:80", "192.168.1.1:80", `${inet.primary.replace(/\.\d+$/, ".1")}:${port}`);
    expect(Object.values(r).every((v) => v === "SHUT")).toBe(true);
    expect(Object.keys(r)).toHaveLength(7);
    await Promise.all([a.kill(), b.kill()]);
  });

  it("refuses a denied CIDR and applies a runtime policy change to new connections", async () => {
    const s = await make({ denyOut: [`${inet.secondary}/32`] });
    expect(await probe(s, `${inet.primary}:80`, `${inet.secondary}:80`)).toEqual({ [`${inet.primary}:80`]: "OPEN", [`${inet.secondary}:80`]: "SHUT" });
    await s.setNetwork({ internet: false, denyOut: [] });
    expect((await probe(s, `${inet.primary}:80`))[`${inet.primary}:80`]).toBe("SHUT");
    await s.setNetwork({ internet: true });
    expect((await probe(s, `${inet.primary}:80`, `${inet.secondary}:80`))[`${inet.secondary}:80`]).toBe("OPEN");
    await s.kill();
  });

  it("keeps its address and network across pause and wake" + (runtime === "gvisor" ? ", hibernation, and in fork clones" : ""), async () => {
    const s = await make({ denyOut: [`${inet.secondary}/32`] });
    const address = s.info.network!.address;
    await s.pause();
    expect((await probe(s, `${inet.primary}:80`))[`${inet.primary}:80`]).toBe("OPEN");
    if (runtime === "gvisor") {
      await s.hibernate();
      const r = await probe(s, `${inet.primary}:80`, `${inet.secondary}:80`);
      expect(r).toEqual({ [`${inet.primary}:80`]: "OPEN", [`${inet.secondary}:80`]: "SHUT" });
      expect((await s.refresh()).network?.address).toBe(address);
      const [clone] = await s.fork(1);
      const cloneAddress = clone!.info.network!.address;
      expect(cloneAddress).not.toBe(address);
      expect((await clone!.commands.run(`python3 -c "import socket; s=socket.socket(2,2); s.connect(('${inet.primary}',9)); print(s.getsockname()[0])"`)).stdout.trim()).toBe(cloneAddress);
      expect(await probe(clone!, `${inet.primary}:80`, `${inet.secondary}:80`)).toEqual({ [`${inet.primary}:80`]: "OPEN", [`${inet.secondary}:80`]: "SHUT" });
      // The source came back in the namespace it kept through the fork, with its address and its rules.
      expect(await probe(s, `${inet.primary}:80`, `${inet.secondary}:80`)).toEqual({ [`${inet.primary}:80`]: "OPEN", [`${inet.secondary}:80`]: "SHUT" });
      expect((await s.commands.run(`python3 -c "import socket; s=socket.socket(2,2); s.connect(('${inet.primary}',9)); print(s.getsockname()[0])"`)).stdout.trim()).toBe(address);
      await clone!.kill();
    }
    expect((await s.refresh()).network?.address).toBe(address);
    await s.kill();
  });

  it.runIf(runtime === "gvisor")("keeps a hibernated sandbox's namespace for a while, then lets it go; a wake after either finds its address and rules", async () => {
    const s = await make({ denyOut: [`${inet.secondary}/32`] });
    const address = s.info.network!.address!;
    const netns = `/var/run/netns/stasis-${networkTag(daemon.dataDir)}-${s.id}`;
    const expectNetwork = async () => {
      expect(await probe(s, `${inet.primary}:80`, `${inet.secondary}:80`)).toEqual({ [`${inet.primary}:80`]: "OPEN", [`${inet.secondary}:80`]: "SHUT" });
      expect((await s.commands.run(`python3 -c "import socket; s=socket.socket(2,2); s.connect(('${inet.primary}',9)); print(s.getsockname()[0])"`)).stdout.trim()).toBe(address);
    };
    await s.hibernate();
    expect(existsSync(netns)).toBe(true);
    const counts = async () => ({ kept: await attachCount(daemon, "kept"), made: await attachCount(daemon, "made") });
    const beforeKept = await counts();
    await expectNetwork();
    expect(await counts()).toEqual({ kept: beforeKept.kept + 1, made: beforeKept.made });
    await s.hibernate();
    // Past the keep time (and a sweep), the namespace is gone; the wake makes it anew.
    await new Promise((r) => setTimeout(r, KEEP_MS + 2_500));
    expect(existsSync(netns)).toBe(false);
    expect((await s.refresh()).state).toBe("hibernated");
    const beforeMade = await counts();
    await expectNetwork();
    expect(existsSync(netns)).toBe(true);
    expect(await counts()).toEqual({ kept: beforeMade.kept, made: beforeMade.made + 1 });
    await s.kill();
    expect(existsSync(netns)).toBe(false);
  });

  it("puts its table back after a firewall reload removed it: running sandboxes keep their policies, new ones get theirs", async () => {
    const kept = await make({ denyOut: [`${inet.secondary}/32`] });
    // What `nft flush ruleset` (a firewall reload) does to this daemon's table, without touching other daemons'.
    expect(spawnSync("nft", ["delete", "table", "ip", `stasis_${networkTag(daemon.dataDir)}`]).status).toBe(0);
    const fresh = await make({ internet: false });
    expect(await probe(kept, `${inet.primary}:80`, `${inet.secondary}:80`)).toEqual({ [`${inet.primary}:80`]: "OPEN", [`${inet.secondary}:80`]: "SHUT" });
    expect((await probe(fresh, `${inet.primary}:80`))[`${inet.primary}:80`]).toBe("SHUT");
    await Promise.all([kept.kill(), fresh.kill()]);
  });

  it("leaves no namespace or rule behind a kill -9 of the daemon, and networks work after the restart", async () => {
    const [before, beforeB] = await Promise.all([make(), make({ internet: false })]);
    await daemon.stop("SIGKILL");
    await daemon.restart();
    const [a, b] = await Promise.all([Sandbox.connect(before.id, daemon.conn), Sandbox.connect(beforeB.id, daemon.conn)]);
    expect((await probe(a, `${inet.primary}:80`))[`${inet.primary}:80`]).toBe("OPEN");
    expect((await probe(b, `${inet.primary}:80`))[`${inet.primary}:80`]).toBe("SHUT");
    await Promise.all([a.kill(), b.kill()]);
    // (The harness's destroy checks that no namespace of this daemon is left.)
  });
});
