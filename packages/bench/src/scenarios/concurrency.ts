import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { deleteAllSandboxes } from "../daemon.js";
import { startHealthProbe } from "../health.js";
import { formatMs } from "../format.js";
import { errorText, sleep } from "../host.js";
import type { ConcurrencyRun } from "../result.js";
import { summarize } from "../stats.js";

interface ClientOutcome {
  ok: boolean;
  ms: number;
  createMs: number;
  error?: string;
}

/** Runs `clients` clients at once, each through `fn`; gathers throughput, latency and errors. */
async function clientsAtOnce(clients: number, fn: (i: number) => Promise<ClientOutcome>): Promise<{ run: ConcurrencyRun; outcomes: ClientOutcome[] }> {
  const t = performance.now();
  const outcomes = await Promise.all(Array.from({ length: clients }, (_, i) => fn(i)));
  const wallMs = performance.now() - t;
  const ok = outcomes.filter((o) => o.ok);
  const messages = new Map<string, number>();
  for (const o of outcomes) if (!o.ok) messages.set(o.error ?? "?", (messages.get(o.error ?? "?") ?? 0) + 1);
  return {
    outcomes,
    run: {
      clients,
      wallMs,
      throughput: ok.length / (wallMs / 1000),
      latency: summarize(ok.map((o) => o.ms)),
      errors: clients - ok.length,
      errorMessages: [...messages].map(([message, count]) => ({ message, count })).sort((a, b) => b.count - a.count),
    },
  };
}

/** One client: create a sandbox, run `echo hi`, delete it. A client whose sandbox was created deletes it even on failure. */
async function stasisClient(ctx: BenchContext): Promise<ClientOutcome> {
  const t = performance.now();
  let createMs = NaN;
  let sandbox: Sandbox | undefined;
  try {
    sandbox = await Sandbox.create({ ...ctx.conn });
    createMs = performance.now() - t;
    const r = await sandbox.commands.run("echo hi");
    if (r.stdout.trim() !== "hi" || r.exitCode !== 0) throw new Error(`echo hi gave exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}`);
    await sandbox.kill();
    sandbox = undefined;
    return { ok: true, ms: performance.now() - t, createMs };
  } catch (err) {
    const error = `${Number.isFinite(createMs) ? "after create: " : "create: "}${errorText(err)}`;
    if (sandbox) await sandbox.kill().catch(() => undefined);
    return { ok: false, ms: performance.now() - t, createMs, error };
  }
}

/**
 * Concurrency: N clients at once, each creating a gVisor sandbox, running `echo hi` and deleting it;
 * throughput, latency (p99) and errors, while a separate thread polls /healthz every ~100 ms. Beside it,
 * N raw `runsc run /bin/echo hi` at once (create + command + delete of a raw container).
 */
export async function concurrencyScenario(ctx: BenchContext): Promise<void> {
  const raw = ctx.raw("gvisor", "concurrency");
  const bundle = await raw.bundle("echo", ["/bin/echo", "hi"]);
  for (const clients of ctx.profile.concurrency) {
    ctx.log(`\n# concurrency: ${clients} clients, gvisor`);
    const probe = await startHealthProbe(`${ctx.conn.apiUrl}/healthz`, 100);
    const { run, outcomes } = await clientsAtOnce(clients, () => stasisClient(ctx));
    const health = await probe.stop();
    const left = await deleteAllSandboxes(ctx.conn).catch(() => ({ deleted: 0, errors: [] as string[] }));
    if (left.deleted > 0) ctx.log(`  ${left.deleted} sandboxes were left after the clients finished (deleted now)`);
    const level: (typeof ctx.concurrency)[number] = {
      runtime: "gvisor",
      clients,
      stasis: { ...run, create: summarize(outcomes.filter((o) => o.ok).map((o) => o.createMs)), health: { ...summarize(health.samples), failures: health.failures } },
    };
    ctx.log(
      `  stasis: ${run.throughput.toFixed(2)} sandboxes/s, p50 ${formatMs(run.latency.median)}, p99 ${formatMs(run.latency.p99)}, errors ${run.errors}; ` +
        `/healthz median ${formatMs(level.stasis.health.median)} p95 ${formatMs(level.stasis.health.p95)} max ${formatMs(level.stasis.health.max)} (${health.samples.length} polls, ${health.failures} failed)`,
    );
    for (const e of run.errorMessages) ctx.log(`  error ×${e.count}: ${e.message}`);
    if (clients <= ctx.profile.concurrencyBaselineMax) {
      await sleep(1_000);
      const base = await clientsAtOnce(clients, async (i) => {
        const t = performance.now();
        try {
          const out = await raw.run(bundle, ctx.id(`conc-${clients}-${i}`));
          if (out.trim() !== "hi") throw new Error(`raw 'runsc run /bin/echo hi' exited 0 but printed ${JSON.stringify(out)} instead of "hi"`);
          return { ok: true, ms: performance.now() - t, createMs: NaN };
        } catch (err) {
          return { ok: false, ms: performance.now() - t, createMs: NaN, error: errorText(err).slice(0, 300) };
        }
      });
      level.baseline = { ...base.run, label: "raw 'runsc run /bin/echo hi' (cold)" };
      ctx.log(`  raw:    ${base.run.throughput.toFixed(2)} runs/s, p50 ${formatMs(base.run.latency.median)}, p99 ${formatMs(base.run.latency.p99)}, errors ${base.run.errors}`);
      for (const e of base.run.errorMessages) ctx.log(`  raw error ×${e.count}: ${e.message}`);
      await raw.sweep();
    }
    ctx.concurrency.push(level);
    await sleep(2_000);
  }
}
