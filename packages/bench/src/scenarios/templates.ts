import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TemplateBuildEvent } from "@stasis/protocol";
import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { deleteAllSandboxes } from "../daemon.js";
import { formatMs } from "../format.js";
import { errorText, mapLimit, runProcess, sleep, time } from "../host.js";
import type { RawRuntime } from "../raw/runtime.js";
import { summarize } from "../stats.js";
import { expectHi, poolReady, rawThawExecSamples } from "./create.js";

type Conn = { apiUrl: string; apiKey: string };

/** What the template's start command serves on port 8000, and what `curl -s localhost:8000` must print. */
const ANSWER = "ok";
/** The first command of a sandbox made from the template: the server is up. */
const FIRST_COMMAND = "curl -s localhost:8000";

/**
 * A tiny HTTP server (python3's http.server) answering "ok" on 127.0.0.1:8000. `nonce` makes its bytes, and so
 * the keys of the template's layers, this run's own: its first build builds every step, and deleting the
 * template removes layers that no other template shares.
 */
function serverSource(nonce: string): string {
  return [
    `# stasis bench: ${nonce}`,
    "from http.server import BaseHTTPRequestHandler, HTTPServer",
    "",
    "class Handler(BaseHTTPRequestHandler):",
    "    def do_GET(self):",
    `        body = b"${ANSWER}\\n"`,
    "        self.send_response(200)",
    '        self.send_header("Content-Length", str(len(body)))',
    "        self.end_headers()",
    "        self.wfile.write(body)",
    "",
    "    def log_message(self, *args):",
    "        pass",
    "",
    'HTTPServer(("127.0.0.1", 8000), Handler).serve_forever()',
    "",
  ].join("\n");
}

/** The template's spec; only its last step depends on `build`, so a rebuild with another number reuses the COPY layer. */
function specText(build: number): string {
  return [
    "from: base",
    "steps:",
    "  - copy: app.py /app/app.py",
    `  - run: echo ${build} > /app/build-id`,
    "start: python3 /app/app.py",
    "ready: curl -sf http://127.0.0.1:8000/",
    "",
  ].join("\n");
}

/** `tar -C dir -cf - .`: the build context as the request body. */
function tarOf(dir: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn("tar", ["-C", dir, "-cf", "-", "."], { stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => chunks.push(d));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`tar -C ${dir} -cf - .: exit ${code}: ${stderr.trim()}`))));
  });
}

/** Lines of an NDJSON body as they arrive. */
async function* ndjsonLines(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) yield line;
    }
  }
  buffered += decoder.decode();
  if (buffered.trim()) yield buffered.trim();
}

interface BuildOutcome {
  /** From sending the request until the `done` event. */
  ms: number;
  /** The snapshot's part: from "snapshot: booting" until "snapshot taken" (NaN when the build took none). */
  snapshotMs: number;
  cachedSteps: number;
  builtSteps: number;
  ref: string;
}

/** POST /v1/templates/build?name=… with a tar of `contextDir`; follows the build's events until it is done. */
async function buildTemplate(ctx: BenchContext, name: string, contextDir: string): Promise<BuildOutcome> {
  const body = await tarOf(contextDir);
  const t = performance.now();
  const res = await fetch(`${ctx.conn.apiUrl}/v1/templates/build?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${ctx.conn.apiKey}`, "content-type": "application/x-tar" },
    body,
    signal: AbortSignal.timeout(15 * 60_000),
  });
  if (!res.ok || !res.body) throw new Error(`POST /v1/templates/build?name=${name}: HTTP ${res.status}: ${(await res.text()).slice(0, 500)}`);
  let snapshotFrom = NaN;
  let snapshotTo = NaN;
  for await (const line of ndjsonLines(res.body as unknown as AsyncIterable<Uint8Array>)) {
    const event = JSON.parse(line) as TemplateBuildEvent;
    switch (event.type) {
      case "step":
        ctx.log(`  step ${event.step}/${event.total} ${event.instruction}${event.cached ? " (cached)" : ""}`);
        break;
      case "progress":
        if (event.message.startsWith("snapshot: booting")) snapshotFrom = performance.now();
        if (event.message.startsWith("snapshot taken")) snapshotTo = performance.now();
        break;
      case "error":
        throw new Error(`the build of template ${name} failed${event.step === null ? "" : ` at step ${event.step} (${event.instruction})`}: ${event.code}: ${event.message}`);
      case "done": {
        const ms = performance.now() - t;
        if (!event.template.snapshot) throw new Error(`template ${event.template.ref} was built without a snapshot (the daemon's runtime cannot checkpoint?)`);
        return { ms, snapshotMs: (Number.isFinite(snapshotTo) ? snapshotTo : performance.now()) - snapshotFrom, cachedSteps: event.cachedSteps, builtSteps: event.builtSteps, ref: event.template.ref };
      }
      default:
        break;
    }
  }
  throw new Error(`the build of template ${name} ended without a done or error event`);
}

/** DELETE /v1/templates/{name}: every version of it. A template that is not there counts as deleted. */
async function deleteTemplate(conn: Conn, name: string): Promise<void> {
  const res = await fetch(`${conn.apiUrl}/v1/templates/${encodeURIComponent(name)}`, { method: "DELETE", headers: { authorization: `Bearer ${conn.apiKey}` }, signal: AbortSignal.timeout(120_000) });
  if (res.ok) return;
  const text = await res.text();
  if (res.status === 404 || text.includes("template_not_found")) return;
  throw new Error(`DELETE /v1/templates/${name}: HTTP ${res.status}: ${text.slice(0, 500)}`);
}

/**
 * What is left of a template this run built once its daemons are stopped (an interrupted build, or a
 * delete that failed): its folder in the shared templates folder, and the layers only it used. Its first
 * layer (FROM base, hard links shared by every template built on the base) stays. Returns what it removed.
 */
export function removeTemplateLeftovers(templatesDir: string, name: string): string[] {
  const dir = join(templatesDir, name);
  if (!existsSync(dir)) return [];
  const versionsOf = (d: string) => (existsSync(d) ? readdirSync(d).filter((e) => /^v[1-9]\d*$/.test(e)) : []);
  const layersOf = (d: string, v: string): string[] => {
    try {
      return (JSON.parse(readFileSync(join(d, v, "template.json"), "utf8")) as { layers?: string[] }).layers ?? [];
    } catch {
      return [];
    }
  };
  const ours = new Set(versionsOf(dir).flatMap((v) => layersOf(dir, v).slice(1)));
  rmSync(dir, { recursive: true, force: true });
  const used = new Set<string>();
  for (const other of readdirSync(templatesDir)) {
    if (other.startsWith(".")) continue;
    for (const v of versionsOf(join(templatesDir, other))) for (const l of layersOf(join(templatesDir, other), v)) used.add(l);
  }
  const removed = [...ours].filter((l) => !used.has(l) && /^[0-9a-f]+$/.test(l));
  for (const l of removed) rmSync(join(templatesDir, ".layers", l), { recursive: true, force: true });
  return [`template ${name} was left in ${templatesDir} (removed, with ${removed.length} layer(s) only it used)`];
}

/** Lets `p` run on; the returned function awaits it (and throws its error). No unhandled rejection meanwhile. */
function later(p: Promise<unknown>): () => Promise<void> {
  const settled = p.then(
    () => null,
    (err: unknown) => ({ err }),
  );
  return async () => {
    const outcome = await settled;
    if (outcome) throw outcome.err;
  };
}

function expectAnswer(stdout: string, what: string): void {
  if (stdout.trim() !== ANSWER) throw new Error(`${what} printed ${JSON.stringify(stdout.slice(0, 200))} instead of "${ANSWER}"`);
}

/** Polls `curl` inside a raw container until its server answers. */
async function waitForRawServer(raw: RawRuntime, id: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out = await runProcess(raw.cmd(["exec", id, "/usr/bin/curl", "-sf", "http://127.0.0.1:8000/"]), { timeoutMs: 30_000 });
    if (out.code === 0 && out.stdout.trim() === ANSWER) return;
    if (Date.now() > deadline) throw new Error(`the raw container's server did not answer within ${timeoutMs / 1000} s: ${out.stderr.trim().slice(-300)}`);
    await sleep(200);
  }
}

/**
 * The build itself: first build (every step built, then the snapshot: boot, start command until ready,
 * checkpoint), then a rebuild with only the last step changed (FROM and COPY from the step cache, the RUN
 * step and a new snapshot). Each is one sample; the creates below use the rebuild (the latest version).
 */
async function builds(ctx: BenchContext, name: string, contextDir: string): Promise<void> {
  ctx.log(`\n# template build: ${name} (from: base, COPY app.py, RUN, start a python3 server, ready: curl)`);
  writeFileSync(join(contextDir, "stasis.yaml"), specText(1));
  const first = await buildTemplate(ctx, name, contextDir);
  ctx.log(`  built ${first.ref} in ${(first.ms / 1000).toFixed(1)} s (${first.builtSteps} steps built, ${first.cachedSteps} cached; snapshot ${(first.snapshotMs / 1000).toFixed(1)} s)`);
  writeFileSync(join(contextDir, "stasis.yaml"), specText(2));
  const again = await buildTemplate(ctx, name, contextDir);
  ctx.log(`  rebuilt as ${again.ref} in ${(again.ms / 1000).toFixed(1)} s (${again.builtSteps} steps built, ${again.cachedSteps} cached; snapshot ${(again.snapshotMs / 1000).toFixed(1)} s)`);
  if (again.builtSteps !== 1) ctx.log(`  !! the rebuild built ${again.builtSteps} steps (expected 1: only the changed last step)`);
  const rec = (id: string, label: string, ms: number) => ctx.rec.record({ id: `gvisor.templates.build.${id}`, section: "templates", scenario: "templates", label, unit: "s", samples: [ms / 1000] });
  rec("first", "template build, first: COPY + RUN built, then the snapshot", first.ms);
  rec("first-snapshot", "template build, first: its snapshot part (boot, start until ready, checkpoint)", first.snapshotMs);
  rec("rebuild", "template rebuild, last step changed: COPY cached, RUN + snapshot", again.ms);
  rec("rebuild-snapshot", "template rebuild: its snapshot part", again.snapshotMs);
}

/**
 * Create → first command from the snapshot template: `Sandbox.create({ template })`, which restores the
 * checkpoint with the server running, then `curl -s localhost:8000`. Beside each sample, in the same run:
 * the raw cold `runsc run /bin/echo hi` of create.ts, and a raw `runsc restore --detach` of a checkpoint of
 * the same server in a plain container followed by `runsc exec curl`.
 */
/** The raw restores' image: the same server in a plain container, checkpointed once it answers. */
async function rawServerImage(ctx: BenchContext, raw: RawRuntime, app: string): Promise<{ server: string; image: string; stdoutFd: number }> {
  const server = await raw.bundle("server", ["/usr/bin/python3", "-c", app]);
  const serverId = ctx.id("tpl-server");
  const { stdoutFd } = await raw.start(server, serverId);
  await waitForRawServer(raw, serverId);
  await sleep(500);
  const image = join(server, "image");
  await raw.checkpoint(serverId, image);
  await raw.remove(serverId);
  return { server, image, stdoutFd };
}

async function fromSnapshot(ctx: BenchContext, name: string, app: string): Promise<void> {
  ctx.log("\n# create → first command from a snapshot template (its server already running), gvisor");
  const raw = ctx.raw("gvisor", "templates");
  const echo = await raw.bundle("echo", ["/bin/echo", "hi"]);
  expectHi(await raw.run(echo, ctx.id("tpl-warm")), "raw runsc run");
  const { server, image, stdoutFd } = await rawServerImage(ctx, raw, app);

  /** One sample: create → first command; the sandbox's delete is started, not awaited (see below). */
  const once = async () => {
    const t = performance.now();
    const s = await Sandbox.create({ template: name, ...ctx.conn });
    const created = performance.now();
    try {
      if (s.info.createdVia !== "snapshot") throw new Error(`the sandbox was created via ${s.info.createdVia}, not from the template's snapshot`);
      const r = await s.commands.run(FIRST_COMMAND);
      const done = performance.now();
      expectAnswer(r.stdout, `'${FIRST_COMMAND}' in the sandbox (exit ${r.exitCode}, stderr ${JSON.stringify(r.stderr.slice(0, 200))})`);
      return { total: done - t, create: created - t, command: done - created, deleted: later(s.kill()) };
    } catch (err) {
      await s.kill().catch(() => undefined);
      throw err;
    }
  };
  await (await once()).deleted(); // a first restore reads the new snapshot and its layers from disk: not a sample
  const toFirst: number[] = [];
  const createOnly: number[] = [];
  const firstCommand: number[] = [];
  const rawRun: number[] = [];
  const rawRestore: number[] = [];
  const rawCurl: number[] = [];
  for (let i = 0; i < ctx.profile.templateCreates; i++) {
    const sample = await once();
    toFirst.push(sample.total);
    createOnly.push(sample.create);
    firstCommand.push(sample.command);
    // Deleting a restored gVisor container, the sandbox's as the raw one's, spends ~1.5 s in `runsc delete`
    // waiting for its gofer with the CPU idle: the raw restore is measured during the sandbox's wait (once
    // the delete has begun), and both deletes are over before the raw cold run and the next sample.
    await sleep(150);
    const rid = ctx.id(`tpl-restore-${i}`);
    rawRestore.push(await raw.restore(server, image, rid, stdoutFd));
    rawCurl.push(await time(async () => expectAnswer(await raw.exec(rid, ["/usr/bin/curl", "-s", "localhost:8000"]), "raw 'runsc exec curl' in the restored container")));
    await Promise.all([sample.deleted(), raw.remove(rid)]);
    rawRun.push(await time(async () => expectHi(await raw.run(echo, ctx.id(`tpl-run-${i}`)), "raw runsc run")));
  }
  const fig = { section: "templates" as const, scenario: "templates", unit: "ms" as const };
  ctx.rec.record({
    ...fig,
    id: "gvisor.templates.snapshot.first-command",
    label: `gvisor: create from a snapshot template → first '${FIRST_COMMAND}' (server up)`,
    samples: toFirst,
    baseline: { label: "raw 'runsc run /bin/echo hi' (cold)", samples: rawRun },
  });
  ctx.rec.record({
    ...fig,
    id: "gvisor.templates.snapshot.create",
    label: "gvisor: create from a snapshot template, until ready",
    samples: createOnly,
    baseline: { label: "raw 'runsc restore --detach' of a checkpoint of the same server", samples: rawRestore },
  });
  ctx.rec.record({
    ...fig,
    id: "gvisor.templates.snapshot.curl",
    label: `gvisor: its first '${FIRST_COMMAND}' (SDK)`,
    samples: firstCommand,
    baseline: { label: "raw 'runsc exec curl -s localhost:8000' right after the restore", samples: rawCurl },
  });
}

/**
 * Create → first `echo hi` from the template's warm pool of 2. The pool is a second private daemon's,
 * with `STASIS_WARM_POOL=<name>=2`: a pool size in the template itself (`pool: 2`) would be written into
 * the shared templates folder, and every other daemon using that folder would then keep members of the
 * bench's template (and lose them when the bench deletes it). The members are restored from the
 * snapshot, as those of a template's own pool are. Each sample waits until both members are frozen again.
 */
async function fromWarmPool(ctx: BenchContext, name: string): Promise<void> {
  ctx.log("\n# create → first command from a template's warm pool (2 members, restored from its snapshot), gvisor");
  const pool = await ctx.startDaemon("tpool", { STASIS_WARM_POOL: `${name}=2` });
  const samples: number[] = [];
  let rawSamples: number[];
  try {
    const waitFull = async () => {
      const deadline = Date.now() + 120_000;
      while (((await poolReady(pool.conn, name)) ?? 0) < 2) {
        if (Date.now() > deadline) throw new Error(`the warm pool of ${name} did not hold 2 ready members within 120 s (GET /v1/info: ${String(await poolReady(pool.conn, name))} ready)`);
        await sleep(100);
      }
    };
    // The sandbox taken is deleted while the pool refills (its `runsc delete` mostly waits, see above).
    let deleted = later(Promise.resolve());
    for (let i = 0; i < ctx.profile.templatePoolCreates; i++) {
      await Promise.all([deleted(), waitFull()]);
      await sleep(300); // the refill's restore has settled
      const t = performance.now();
      const s = await Sandbox.create({ template: name, ...pool.conn });
      try {
        expectHi((await s.commands.run("echo hi")).stdout, "the pooled sandbox");
        samples.push(performance.now() - t);
        if (s.info.createdVia !== "warm_pool") throw new Error(`the sandbox was created via ${s.info.createdVia}, not from the warm pool`);
      } finally {
        deleted = later(s.kill());
      }
    }
    await deleted();
    rawSamples = await rawThawExecSamples(ctx, "tpl-pool", ctx.profile.templatePoolCreates);
  } finally {
    await ctx.retireDaemon(pool);
  }
  ctx.rec.record({
    id: "gvisor.templates.warm-pool.first-command",
    section: "templates",
    scenario: "templates",
    label: "gvisor: create from a template's warm pool → first 'echo hi'",
    unit: "ms",
    samples,
    baseline: { label: "raw container started ahead and frozen: thaw + 'runsc exec echo hi'", samples: rawSamples },
  });
}

/**
 * A burst: N creates from the snapshot template (no pool) fired at once. Per create, the time until its
 * reply; the wall time until the last; errors: a create that failed, a sandbox whose server does not
 * answer `curl` afterwards (checked after the burst, untimed) or that cannot be deleted. Beside it, N raw
 * cold `runsc run /bin/echo hi` at once, and N raw `runsc restore` of a checkpoint of the same server at once
 * (what a create from the snapshot does by hand).
 */
async function burst(ctx: BenchContext, name: string, app: string): Promise<void> {
  const n = ctx.profile.templateBurst;
  ctx.log(`\n# burst: ${n} creates at once from a snapshot template, gvisor`);
  await sleep(1_000);
  const errors = new Map<string, number>();
  const fail = (message: string) => errors.set(message, (errors.get(message) ?? 0) + 1);
  const created: Sandbox[] = [];
  const latencies: number[] = [];
  const t = performance.now();
  await Promise.all(
    Array.from({ length: n }, async () => {
      const t0 = performance.now();
      try {
        const s = await Sandbox.create({ template: name, ...ctx.conn });
        latencies.push(performance.now() - t0);
        created.push(s);
      } catch (err) {
        fail(`create: ${errorText(err).slice(0, 300)}`);
      }
    }),
  );
  const wallMs = performance.now() - t;
  await mapLimit(created, 4, async (s) => {
    try {
      if (s.info.createdVia !== "snapshot") throw new Error(`created via ${s.info.createdVia}, not from the snapshot`);
      expectAnswer((await s.commands.run(FIRST_COMMAND)).stdout, `'${FIRST_COMMAND}'`);
    } catch (err) {
      fail(`after create: ${errorText(err).slice(0, 300)}`);
    }
  });
  // All at once: a restored sandbox's delete mostly waits in `runsc delete` (see above).
  await mapLimit(created, created.length, (s) => s.kill().catch((err: unknown) => fail(`delete: ${errorText(err).slice(0, 300)}`)));
  const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
  const stats = summarize(latencies);
  ctx.log(`  stasis: ${created.length}/${n} created in ${(wallMs / 1000).toFixed(1)} s, per create p50 ${formatMs(stats.median)}, p99 ${formatMs(stats.p99)}; errors ${errorCount}`);
  for (const [message, count] of errors) ctx.log(`  error ×${count}: ${message}`);

  await sleep(1_000);
  const raw = ctx.raw("gvisor", "templates");
  const echo = await raw.bundle("echo", ["/bin/echo", "hi"]);
  const rawLatencies: number[] = [];
  let rawErrors = 0;
  const tr = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const t0 = performance.now();
      try {
        expectHi(await raw.run(echo, ctx.id(`tpl-burst-${i}`)), "raw runsc run");
        rawLatencies.push(performance.now() - t0);
      } catch {
        rawErrors++;
      }
    }),
  );
  const rawWallMs = performance.now() - tr;
  const rawStats = summarize(rawLatencies);
  ctx.log(`  raw:    ${n} runs in ${(rawWallMs / 1000).toFixed(1)} s, p50 ${formatMs(rawStats.median)}, p99 ${formatMs(rawStats.p99)}, errors ${rawErrors}`);
  await raw.sweep();

  // What the same burst costs by hand: N raw `runsc restore` of a checkpoint of the same server at once.
  await sleep(1_000);
  const { server, image, stdoutFd } = await rawServerImage(ctx, raw, app);
  const restoreLatencies: number[] = [];
  const restored: string[] = [];
  let restoreErrors = 0;
  const trr = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const id = ctx.id(`tpl-burst-restore-${i}`);
      try {
        restoreLatencies.push(await raw.restore(server, image, id, stdoutFd));
        restored.push(id);
      } catch {
        restoreErrors++;
      }
    }),
  );
  const restoreWallMs = performance.now() - trr;
  const restoreStats = summarize(restoreLatencies);
  ctx.log(`  raw:    ${n} restores in ${(restoreWallMs / 1000).toFixed(1)} s, p50 ${formatMs(restoreStats.median)}, p99 ${formatMs(restoreStats.p99)}, errors ${restoreErrors}`);
  // A restored container's delete waits ~1.5 s on its gofer: all at once, not one by one in the sweep.
  await mapLimit(restored, restored.length, (id) => raw.remove(id));
  await raw.sweep();

  const fig = { section: "templates" as const, scenario: "templates" };
  ctx.rec.record({ ...fig, id: "gvisor.templates.burst.create", label: `gvisor: burst of ${n} creates at once from a snapshot template: each create`, unit: "ms", samples: latencies, baseline: { label: `raw 'runsc run /bin/echo hi', ${n} at once (cold)`, samples: rawLatencies } });
  ctx.rec.record({ ...fig, id: "gvisor.templates.burst.wall", label: `gvisor: burst of ${n} creates at once: until the last reply`, unit: "s", samples: [wallMs / 1000], baseline: { label: `raw: ${n} 'runsc run' at once, until the last exit`, samples: [rawWallMs / 1000] } });
  ctx.rec.record({ ...fig, id: "gvisor.templates.burst.wall-restore", label: `gvisor: burst of ${n} creates at once, until the last reply, beside raw restores`, unit: "s", samples: [wallMs / 1000], baseline: { label: `raw: ${n} 'runsc restore --detach' of the same server at once, until the last returns`, samples: [restoreWallMs / 1000] } });
  ctx.rec.record({ ...fig, id: "gvisor.templates.burst.errors", label: `gvisor: burst of ${n} creates at once: errors`, unit: "count", samples: [errorCount] });
}

/**
 * Templates: a snapshot template whose start command is a small HTTP server. Its build (first, and again
 * with the last step changed), creates from its snapshot, from its warm pool, and a burst of creates.
 * The template lives in the shared templates folder under a name of this run; it is deleted at the end,
 * on failure too (and by the run's cleanup when interrupted).
 */
export async function templatesScenario(ctx: BenchContext): Promise<void> {
  const name = `${ctx.tag}-server`;
  const contextDir = join(ctx.workDir, "template-server");
  rmSync(contextDir, { recursive: true, force: true });
  mkdirSync(contextDir, { recursive: true });
  const app = serverSource(`${ctx.tag} ${new Date().toISOString()}`);
  writeFileSync(join(contextDir, "app.py"), app);
  ctx.templates.add(name);
  try {
    await builds(ctx, name, contextDir);
    await fromSnapshot(ctx, name, app);
    await fromWarmPool(ctx, name);
    await burst(ctx, name, app);
  } finally {
    const left = await deleteAllSandboxes(ctx.conn).catch(() => ({ deleted: 0, errors: [] as string[] }));
    if (left.deleted > 0) ctx.log(`  (${left.deleted} sandboxes of the template deleted before it)`);
    try {
      await deleteTemplate(ctx.conn, name);
      if (!existsSync(join(ctx.templatesDir, name))) {
        ctx.templates.delete(name);
        ctx.log(`  template ${name} deleted`);
      }
    } catch (err) {
      ctx.log(`  !! could not delete template ${name}: ${errorText(err)} (the cleanup removes it once the daemons are stopped)`);
    }
  }
}
