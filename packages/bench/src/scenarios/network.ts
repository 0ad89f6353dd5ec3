import { execFile } from "node:child_process";
import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import type { BenchDaemon } from "../daemon.js";
import { startTestInternet, type TestInternet } from "../net/test-internet.js";

/**
 * Connect + request + first byte, `n` times: a new TCP connection each (what an HTTP client without
 * keep-alive does), in milliseconds, one per line. The same script runs in the sandbox and on the host.
 */
const LATENCY_PY = `
import socket, sys, time
host, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
addr = socket.gethostbyname(addr)  # once, as a client with a resolver cache does: the loop times connections
req = ("GET / HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n" % host).encode()
for i in range(n + 3):
    t = time.perf_counter()
    s = socket.create_connection((addr, 80), timeout=10)
    s.sendall(req)
    s.recv(1)
    ms = (time.perf_counter() - t) * 1000
    s.close()
    if i >= 3: print("%.3f" % ms)
`;

/** Downloads `mib` MiB over one connection and prints MiB/s. */
const THROUGHPUT_PY = `
import socket, sys, time
host, addr, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.create_connection((addr, 80), timeout=30)
s.sendall(("GET /bytes/%d HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n" % (mib << 20, host)).encode())
t = time.perf_counter(); got = 0
while True:
    b = s.recv(1 << 20)
    if not b: break
    got += len(b)
print("%.1f" % (got / 1048576 / (time.perf_counter() - t)))
`;

function onHost(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile("python3", ["-c", script, ...args], { timeout: 120_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
}

const numbers = (text: string) => text.split("\n").map(Number).filter((n) => Number.isFinite(n) && n > 0);

/** How long the network daemon keeps a hibernated sandbox's namespace (STASIS_HIBERNATED_NETWORK_KEEP_MS). */
const KEEP_MS = 2_000;

/** Seconds of network setup the daemon counted, namespaces made anew or kept (stasis_network_attach_seconds). */
async function attachTotals(daemon: BenchDaemon, how: "made" | "kept"): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${daemon.url}/metrics`, { headers: { authorization: `Bearer ${daemon.conn.apiKey}` } })).text();
  const read = (name: string) => Number(new RegExp(`^stasis_network_attach_seconds_${name}\\{how="${how}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? "0");
  return { sum: read("sum"), count: read("count") };
}

/** Milliseconds of network setup `op` put on its critical path, per network of that kind set up (NaN: none). */
async function setupCost(daemon: BenchDaemon, how: "made" | "kept", op: () => Promise<unknown>): Promise<number> {
  const before = await attachTotals(daemon, how);
  await op();
  const after = await attachTotals(daemon, how);
  return after.count > before.count ? ((after.sum - before.sum) / (after.count - before.count)) * 1000 : NaN;
}

async function traffic(ctx: BenchContext, daemon: BenchDaemon, inet: TestInternet, runtime: "gvisor" | "crun"): Promise<void> {
  const [web1] = inet.names as [string];
  const n = ctx.profile.mode === "quick" ? 30 : 100;
  const mib = ctx.profile.mode === "quick" ? 50 : 100;
  const direct = await Sandbox.create({ runtime, ...daemon.conn });
  // A name in the allow list: TCP 80 goes through the egress proxy.
  const proxied = await Sandbox.create({ runtime, network: { allowOut: [web1] }, ...daemon.conn });
  try {
    for (const s of [direct, proxied]) {
      await s.files.write("/tmp/latency.py", LATENCY_PY);
      await s.files.write("/tmp/throughput.py", THROUGHPUT_PY);
    }
    const host = numbers(await onHost(LATENCY_PY, [web1, inet.primary, String(n)]));
    const inDirect = numbers((await direct.commands.run(`python3 /tmp/latency.py ${web1} ${inet.primary} ${n}`, { timeoutMs: 120_000 })).stdout);
    const inProxied = numbers((await proxied.commands.run(`python3 /tmp/latency.py ${web1} ${web1} ${n}`, { timeoutMs: 120_000 })).stdout);
    const base = { label: "the same from the host", samples: host };
    ctx.rec.record({ id: `${runtime}.network.first-byte`, section: "network", scenario: "network", label: `${runtime}: connect + first byte to the test internet, direct`, unit: "ms", samples: inDirect, baseline: base });
    ctx.rec.record({ id: `${runtime}.network.first-byte-proxy`, section: "network", scenario: "network", label: `${runtime}: connect + first byte through the egress proxy (allow list by name)`, unit: "ms", samples: inProxied, baseline: base });
    const rounds = ctx.profile.mode === "quick" ? 2 : 3;
    const hostRate: number[] = [];
    const sandboxRate: number[] = [];
    const proxyRate: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // Alternating, so that the machine's noise falls on all three alike.
      hostRate.push(...numbers(await onHost(THROUGHPUT_PY, [web1, inet.primary, String(mib)])));
      sandboxRate.push(...numbers((await direct.commands.run(`python3 /tmp/throughput.py ${web1} ${inet.primary} ${mib}`, { timeoutMs: 120_000 })).stdout));
      proxyRate.push(...numbers((await proxied.commands.run(`python3 /tmp/throughput.py ${web1} ${web1} ${mib}`, { timeoutMs: 120_000 })).stdout));
    }
    const hostSeries = { label: "the same from the host", samples: hostRate };
    ctx.rec.record({ id: `${runtime}.network.throughput`, section: "network", scenario: "network", label: `${runtime}: download ${mib} MiB from the test internet, direct`, unit: "MiB/s", better: "higher", samples: sandboxRate, baseline: hostSeries });
    ctx.rec.record({ id: `${runtime}.network.throughput-proxy`, section: "network", scenario: "network", label: `${runtime}: download ${mib} MiB through the egress proxy`, unit: "MiB/s", better: "higher", samples: proxyRate, baseline: hostSeries });
  } finally {
    await Promise.all([direct.kill(), proxied.kill()].map((p) => p.catch(() => {})));
  }
}

/** What networking adds to create, wake from disk and fork: the network setup each puts on its critical path. */
async function setup(ctx: BenchContext, daemon: BenchDaemon): Promise<void> {
  const n = ctx.profile.mode === "quick" ? 3 : 8;
  const create: number[] = [];
  const wakeKept: number[] = [];
  const wakeMade: number[] = [];
  const fork: number[] = [];
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < n; i++) {
    let s: Sandbox | undefined;
    create.push(
      await setupCost(daemon, "made", async () => {
        s = await Sandbox.create({ runtime: "gvisor", idleTimeoutMs: 0, ...daemon.conn });
      }),
    );
    const sandbox = s!;
    // Woken soon after its hibernation: its namespace and rules were kept, only its address goes back.
    await sandbox.hibernate();
    await sleep(1_000);
    wakeKept.push(await setupCost(daemon, "kept", () => sandbox.commands.run("echo hi")));
    // Woken after the daemon let them go (the standby sweeper, once a second): made anew.
    await sandbox.hibernate();
    await sleep(KEEP_MS + 1_500);
    wakeMade.push(await setupCost(daemon, "made", () => sandbox.commands.run("echo hi")));
    let clones: Sandbox[] = [];
    fork.push(
      await setupCost(daemon, "made", async () => {
        clones = await sandbox.fork(1);
      }),
    );
    await Promise.all([sandbox, ...clones].map((c) => c.kill().catch(() => {})));
  }
  const figure = (id: string, what: string, samples: number[]) =>
    ctx.rec.record({ id: `gvisor.network.setup-${id}`, section: "network", scenario: "network-setup", label: `gvisor: network setup on the critical path of ${what}`, unit: "ms", samples: samples.filter(Number.isFinite) });
  figure("create", "a cold create", create);
  figure("wake", "a wake from disk (namespace kept)", wakeKept);
  figure("wake-made", "a wake from disk (namespace made anew)", wakeMade);
  figure("fork", "a fork (per sandbox started)", fork);
}

/**
 * Sandboxes on the network: first byte and throughput to the bench's own test internet (a network
 * namespace serving HTTP, never the real one) from a sandbox, directly and through the egress proxy,
 * beside the same from the host in one run; and the network setup a create, a wake and a fork wait for.
 */
export async function networkScenario(ctx: BenchContext): Promise<void> {
  ctx.log("\n# network");
  const inet = await startTestInternet();
  let daemon: BenchDaemon | undefined;
  try {
    daemon = await ctx.startDaemon("network", { STASIS_NETWORK_OPEN: inet.cidr, STASIS_DNS_UPSTREAM: inet.dns, STASIS_NETWORK_RANGE: "10.212.0.0/20", STASIS_HIBERNATED_NETWORK_KEEP_MS: String(KEEP_MS) });
    for (const runtime of ["gvisor", "crun"] as const) await traffic(ctx, daemon, inet, runtime);
    await setup(ctx, daemon);
  } finally {
    if (daemon) await ctx.retireDaemon(daemon);
    await inet.close();
  }
}
