import { Agent, request } from "node:http";
import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { makeRawNetns, removeRawNetns } from "../raw/raw-netns.js";

/** A small server in the sandbox: `/` answers a few bytes, `/blob/N` N bytes. */
const SERVER = `
const http = require("http");
const chunk = Buffer.alloc(1 << 20, 7);
http.createServer((req, res) => {
  if (!req.url.startsWith("/blob/")) return res.end("ok");
  let left = Number(req.url.slice(6));
  res.writeHead(200, { "content-length": String(left) });
  const pump = () => { while (left > 0) { const n = Math.min(left, chunk.length); left -= n; if (!res.write(chunk.subarray(0, n))) return res.once("drain", pump); } res.end(); };
  pump();
}).listen(8000, "0.0.0.0");
`;

interface Endpoint {
  host: string;
  port: number;
  headers: Record<string, string>;
}

/** One GET; resolves with ms to the whole body and its size. */
function get(e: Endpoint, path: string, agent: Agent | false): Promise<{ ms: number; bytes: number; status: number }> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: e.host, port: e.port, path, headers: e.headers, agent }, (res) => {
      let bytes = 0;
      res.on("data", (d: Buffer) => (bytes += d.length));
      res.on("end", () => resolve({ ms: performance.now() - t, bytes, status: res.statusCode ?? 0 }));
      res.on("error", reject);
    });
    req.on("error", reject);
    // A request that never completes fails the run rather than hanging it.
    req.setTimeout(60_000, () => req.destroy(new Error(`GET ${path}: no reply within 60 s`)));
    req.end();
  });
}

async function series(e: Endpoint, n: number, agent: Agent): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await get(e, "/", agent)).ms);
  return out;
}

/**
 * Requests through the preview route (`<port>-<id>.localhost` on the daemon) beside the same requests
 * sent straight to the sandbox's address, in one run: latency with keep-alive, a 100 MiB download, 200
 * concurrent keep-alive clients, and the first byte from a paused and from a hibernated sandbox.
 */
export async function previewScenario(ctx: BenchContext): Promise<void> {
  ctx.log("\n# preview URLs");
  const rounds = ctx.profile.mode === "quick" ? 3 : 6;
  const sandbox = await Sandbox.create({ runtime: "gvisor", idleTimeoutMs: 0, ...ctx.conn });
  try {
    await sandbox.files.write("/tmp/server.js", SERVER);
    await sandbox.commands.start("node /tmp/server.js", { timeoutMs: 0 });
    for (let i = 0; i < 100 && !(await sandbox.ports()).some((p) => p.port === 8000); i++) await new Promise((r) => setTimeout(r, 100));
    const token = (await sandbox.getPreview()).token;
    const api = new URL(ctx.conn.apiUrl);
    const route: Endpoint = { host: "127.0.0.1", port: Number(api.port), headers: { host: `8000-${sandbox.id}.localhost:${api.port}`, "x-stasis-preview-token": token } };
    const direct: Endpoint = { host: sandbox.info.network?.address ?? "", port: 8000, headers: {} };
    if (!direct.host) throw new Error("the sandbox has no network address: is networking on?");
    const n = ctx.profile.mode === "quick" ? 100 : 400;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const viaRoute: number[] = [];
    const straight: number[] = [];
    // Alternating blocks, so that noise falls on both alike.
    for (let i = 0; i < 4; i++) {
      viaRoute.push(...(await series(route, n / 4, agent)));
      straight.push(...(await series(direct, n / 4, agent)));
    }
    ctx.rec.record({ id: "gvisor.preview.request", section: "preview", scenario: "preview", label: "gvisor: GET through the preview route (keep-alive)", unit: "ms", samples: viaRoute, baseline: { label: "the same sent straight to the sandbox's address", samples: straight } });

    const mib = ctx.profile.mode === "quick" ? 50 : 100;
    const rate = async (e: Endpoint) => {
      const r = await get(e, `/blob/${mib << 20}`, false);
      return r.bytes / 1048576 / (r.ms / 1000);
    };
    const routeRate: number[] = [];
    const directRate: number[] = [];
    for (let i = 0; i < 3; i++) {
      routeRate.push(await rate(route));
      directRate.push(await rate(direct));
    }
    ctx.rec.record({ id: "gvisor.preview.throughput", section: "preview", scenario: "preview", label: `gvisor: download ${mib} MiB through the preview route`, unit: "MiB/s", better: "higher", samples: routeRate, baseline: { label: "straight from the sandbox's address", samples: directRate } });

    const clients = 200;
    const perClient = ctx.profile.mode === "quick" ? 5 : 20;
    let errors = 0;
    const t = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        const own = new Agent({ keepAlive: true, maxSockets: 1 });
        for (let i = 0; i < perClient; i++) {
          const r = await get(route, "/", own).catch(() => ({ status: 0 }));
          if (r.status !== 200) errors++;
        }
        own.destroy();
      }),
    );
    const seconds = (performance.now() - t) / 1000;
    ctx.rec.record({ id: "gvisor.preview.concurrent-rps", section: "preview", scenario: "preview", label: `gvisor: ${clients} keep-alive clients through the route (requests/s)`, unit: "/s", better: "higher", samples: [(clients * perClient) / seconds] });
    ctx.rec.record({ id: "gvisor.preview.concurrent-errors", section: "preview", scenario: "preview", label: `gvisor: errors among ${clients * perClient} requests from ${clients} clients`, unit: "count", samples: [errors] });

    const fromPaused: number[] = [];
    const running: number[] = [];
    const fromDisk: number[] = [];
    for (let i = 0; i < rounds; i++) {
      await new Promise((r) => setTimeout(r, 1_000));
      running.push((await get(route, "/", false)).ms);
      await sandbox.pause();
      await new Promise((r) => setTimeout(r, 1_000));
      fromPaused.push((await get(route, "/", false)).ms);
      await sandbox.hibernate();
      await new Promise((r) => setTimeout(r, 1_000));
      fromDisk.push((await get(route, "/", false)).ms);
    }
    const awake = { label: "the same request to the running sandbox (new connection)", samples: running };
    ctx.rec.record({ id: "gvisor.preview.first-byte-paused", section: "preview", scenario: "preview", label: "gvisor: request to a paused sandbox through the route (wakes it)", unit: "ms", samples: fromPaused, baseline: awake });
    ctx.rec.record({ id: "gvisor.preview.first-byte-hibernated", section: "preview", scenario: "preview", label: "gvisor: request to a hibernated sandbox through the route (restores it)", unit: "ms", samples: fromDisk, baseline: awake });
    agent.destroy();
  } finally {
    await sandbox.kill().catch(() => {});
  }
  // Against raw runsc, like for like: a fresh sandbox whose server has served nothing yet, as the raw
  // container's has not (the one above grew its heap serving the load, so its image is larger), and with
  // nothing else running beside either: on Debian's runsc (20240729) the server above, woken after the
  // 200 clients, may spin a core in its event loop (gVisor's epoll state saved mid-notification).
  const fresh = await freshRestoreFirstByte(ctx, rounds);
  const raw = await rawRestoreFirstByte(ctx, rounds);
  ctx.rec.record({ id: "gvisor.preview.first-byte-hibernated-raw", section: "preview", scenario: "preview", label: "gvisor: request to a hibernated sandbox (idle server) through the route, against raw runsc", unit: "ms", samples: fresh, baseline: { label: "raw 'runsc restore' of the same server + the request straight to it", samples: raw } });
}

/** A new sandbox running the server, hibernated and woken by a request through its route, `rounds` times. */
async function freshRestoreFirstByte(ctx: BenchContext, rounds: number): Promise<number[]> {
  const sandbox = await Sandbox.create({ runtime: "gvisor", idleTimeoutMs: 0, ...ctx.conn });
  try {
    await sandbox.files.write("/tmp/server.js", SERVER);
    await sandbox.commands.start("node /tmp/server.js", { timeoutMs: 0 });
    for (let i = 0; i < 100 && !(await sandbox.ports()).some((p) => p.port === 8000); i++) await new Promise((r) => setTimeout(r, 100));
    const api = new URL(ctx.conn.apiUrl);
    const route: Endpoint = { host: "127.0.0.1", port: Number(api.port), headers: { host: `8000-${sandbox.id}.localhost:${api.port}`, "x-stasis-preview-token": (await sandbox.getPreview()).token } };
    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      await sandbox.hibernate();
      await new Promise((r) => setTimeout(r, 1_000));
      samples.push((await get(route, "/", false)).ms);
    }
    return samples;
  } finally {
    await sandbox.kill().catch(() => {});
  }
}

/**
 * The raw floor of a request to a hibernated sandbox: the same server in a plain runsc container with its
 * own network namespace (as the daemon runs it), checkpointed once; each round makes the fresh namespace
 * runsc needs (not timed), then times `runsc restore --detach` plus the request sent straight to it.
 */
async function rawRestoreFirstByte(ctx: BenchContext, rounds: number): Promise<number[]> {
  const raw = ctx.raw("gvisor", "preview", { network: true });
  const name = `stasis-bench-${ctx.tag}`;
  const iface = `sxb${ctx.tag.replace(/[^a-z0-9]/gi, "").slice(0, 8)}`;
  // Outside the daemon's default range (10.214.0.0/16) and the tests' (10.215-254).
  const subnet = "10.213.254.0";
  try {
    let ns = await makeRawNetns(name, iface, subnet);
    const bundle = await raw.bundle("preview-server", ["node", "-e", SERVER], { netnsPath: ns.path });
    const id = ctx.id("preview-server");
    const { stdoutFd } = await raw.start(bundle, id);
    const direct: Endpoint = { host: ns.address, port: 8000, headers: {} };
    const untilServed = async (deadlineMs: number) => {
      for (;;) {
        const r = await get(direct, "/", false).catch(() => null);
        if (r?.status === 200) return;
        if (Date.now() > deadlineMs) throw new Error("the raw container's server never answered");
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    await untilServed(Date.now() + 60_000);
    const image = `${bundle}/image`;
    await raw.checkpoint(id, image);
    await raw.remove(id);
    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      ns = await makeRawNetns(name, iface, subnet);
      const rid = ctx.id(`preview-r${i}`);
      const t = performance.now();
      await raw.restore(bundle, image, rid, stdoutFd);
      await untilServed(Date.now() + 30_000);
      samples.push(performance.now() - t);
      await raw.remove(rid);
    }
    return samples;
  } finally {
    await removeRawNetns(name, iface);
  }
}
