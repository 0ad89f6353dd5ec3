import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { freezerWrite, sleep, time } from "../host.js";
import type { RuntimeName } from "../raw/runtime.js";

/** Wait after each Stasis sample, so that the next timing (raw or Stasis) starts on a quiet host. */
const QUIET_MS = 1_500;

export function expectHi(stdout: string, what: string): void {
  if (stdout.trim() !== "hi") throw new Error(`${what} printed ${JSON.stringify(stdout)} instead of "hi"`);
}

/**
 * Create-to-first-command, cold: `Sandbox.create()` and then `commands.run("echo hi")`, against a raw cold
 * `runsc run` / `crun run` of `/bin/echo hi` on the same rootfs. Samples alternate between the two so that
 * the machine's noise falls on both alike.
 */
async function cold(ctx: BenchContext, runtime: RuntimeName): Promise<void> {
  ctx.log(`\n# create to first command, ${runtime}`);
  const raw = ctx.raw(runtime);
  const bundle = await raw.bundle("echo", ["/bin/echo", "hi"]);
  expectHi(await raw.run(bundle, ctx.id(`warm-${runtime}`)), `raw ${raw.tool} run`);
  const toFirst: number[] = [];
  const createOnly: number[] = [];
  const rawRun: number[] = [];
  for (let i = 0; i < ctx.profile.creates; i++) {
    const t = performance.now();
    const s = await Sandbox.create({ runtime, ...ctx.conn });
    createOnly.push(performance.now() - t);
    expectHi((await s.commands.run("echo hi")).stdout, "the sandbox");
    toFirst.push(performance.now() - t);
    await s.kill();
    // Quiet before the raw run: background work the create set off (the daemon's disk pool refills
    // 500 ms after handing a disk out, at low priority) must not land on the baseline.
    await sleep(QUIET_MS);
    rawRun.push(await time(async () => expectHi(await raw.run(bundle, ctx.id(`create-${runtime}-${i}`)), `raw ${raw.tool} run`)));
  }
  ctx.rec.record({
    id: `${runtime}.create.first-command`,
    section: "create",
    scenario: "create",
    label: `${runtime}: create → first 'echo hi' (SDK, cold)`,
    unit: "ms",
    samples: toFirst,
    baseline: { label: `raw '${raw.tool} run /bin/echo hi' (cold)`, samples: rawRun },
  });
  ctx.rec.record({ id: `${runtime}.create.ready`, section: "create", scenario: "create", label: `${runtime}: create until ready (SDK, cold)`, unit: "ms", samples: createOnly });
}

/**
 * The only snapshot mechanism Stasis has is fork (there is no warm pool): `sandbox.fork(1)` of an idle
 * running sandbox, then the copy's first `echo hi`. Beside it, by hand: restore a checkpoint of an idle
 * raw container (`runsc restore --detach`) and `runsc exec echo hi` in it.
 */
async function fromSnapshot(ctx: BenchContext): Promise<void> {
  ctx.log("\n# create to first command from a snapshot (fork), gvisor");
  const source = await Sandbox.create({ runtime: "gvisor", idleTimeoutMs: 0, ...ctx.conn });
  const forks: number[] = [];
  try {
    await source.commands.run("echo hi");
    for (let i = 0; i < ctx.profile.snapshotForks; i++) {
      const t = performance.now();
      const [copy] = await source.fork(1);
      expectHi((await copy!.commands.run("echo hi")).stdout, "the fork");
      forks.push(performance.now() - t);
      await copy!.kill();
      await sleep(500);
    }
  } finally {
    await source.kill().catch(() => undefined);
  }

  const raw = ctx.raw("gvisor", "snapshot");
  const bundle = await raw.bundle("idle", ["/bin/sleep", "3600"]);
  const id = ctx.id("snap");
  const { stdoutFd } = await raw.start(bundle, id);
  const image = `${bundle}/image`;
  await raw.checkpoint(id, image);
  await raw.remove(id);
  const restores: number[] = [];
  for (let i = 0; i < ctx.profile.snapshotForks; i++) {
    const rid = ctx.id(`snap-r${i}`);
    const restore = await raw.restore(bundle, image, rid, stdoutFd);
    const exec = await time(async () => expectHi(await raw.exec(rid, ["/bin/echo", "hi"]), "the restored raw container"));
    restores.push(restore + exec);
    await sleep(300);
    await raw.remove(rid);
  }
  ctx.rec.record({
    id: "gvisor.create.from-snapshot",
    section: "create",
    scenario: "create",
    label: "gvisor: fork of an idle sandbox → first 'echo hi' (snapshot)",
    unit: "ms",
    samples: forks,
    baseline: { label: "raw 'runsc restore --detach' of an idle image + 'runsc exec echo hi'", samples: restores },
  });
}

interface PoolInfo {
  warmPools?: { template: string; size: number; ready: number; booting: number }[];
}

/** Frozen members ready in the daemon's warm pool of `template` (its name or `name:version`); undefined when it has none. */
export async function poolReady(conn: { apiUrl: string; apiKey: string }, template = "base"): Promise<number | undefined> {
  const res = await fetch(`${conn.apiUrl}/v1/info`, { headers: { authorization: `Bearer ${conn.apiKey}` } });
  const info = (await res.json()) as PoolInfo;
  return info.warmPools?.find((p) => p.template === template || p.template.startsWith(`${template}:`))?.ready;
}

/**
 * The warm pool's baseline, by hand: a raw container started ahead and frozen through its cgroup; each
 * sample thaws it and runs `runsc exec echo hi`. `purpose` keeps its runtime root apart from others.
 */
export async function rawThawExecSamples(ctx: BenchContext, purpose: string, n: number): Promise<number[]> {
  const raw = ctx.raw("gvisor", purpose);
  const rawId = ctx.id(purpose);
  const bundle = await raw.bundle(purpose, ["/bin/sleep", "3600"], { cgroupId: rawId });
  await raw.start(bundle, rawId);
  const cgroup = raw.cgroupPath(rawId);
  const samples: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      freezerWrite(cgroup, true);
      await sleep(300);
      samples.push(
        await time(async () => {
          freezerWrite(cgroup, false);
          expectHi(await raw.exec(rawId, ["/bin/echo", "hi"]), "raw runsc exec");
        }),
      );
    }
  } finally {
    await raw.remove(rawId);
  }
  return samples;
}

/**
 * Warm pool: a second private daemon with `STASIS_WARM_POOL=base=1` (the main one stays without a pool,
 * so its creates stay cold). Each sample waits until the pool holds a booted, frozen member again, then
 * times create → first `echo hi`. Beside it, the same by hand: a raw container started ahead and frozen
 * through its cgroup, then thawed and `runsc exec echo hi`.
 */
async function fromWarmPool(ctx: BenchContext): Promise<void> {
  ctx.log("\n# create to first command from the warm pool, gvisor");
  const pool = await ctx.startDaemon("pool", { STASIS_WARM_POOL: "base=1" });
  if ((await poolReady(pool.conn)) === undefined) {
    ctx.log("  this daemon has no warm pool (GET /v1/info lists none): skipped");
    await ctx.retireDaemon(pool);
    return;
  }
  const waitReady = async () => {
    const deadline = Date.now() + 60_000;
    while (((await poolReady(pool.conn)) ?? 0) < 1) {
      if (Date.now() > deadline) throw new Error("the warm pool did not refill within 60 s");
      await sleep(100);
    }
  };
  const samples: number[] = [];
  const vias = new Set<string>();
  for (let i = 0; i < ctx.profile.poolCreates; i++) {
    await waitReady();
    await sleep(300); // the refill's boot has settled
    const t = performance.now();
    const s = await Sandbox.create({ ...pool.conn });
    expectHi((await s.commands.run("echo hi")).stdout, "the pooled sandbox");
    samples.push(performance.now() - t);
    vias.add(String((s.info as unknown as Record<string, unknown>).createdVia));
    await s.kill();
  }
  if (!vias.has("warm_pool") || vias.size > 1) ctx.log(`  !! the creates came from: ${[...vias].join(", ")} (expected warm_pool only)`);

  let rawSamples: number[];
  try {
    rawSamples = await rawThawExecSamples(ctx, "pool", ctx.profile.poolCreates);
  } finally {
    await ctx.retireDaemon(pool);
  }
  ctx.rec.record({
    id: "gvisor.create.warm-pool",
    section: "create",
    scenario: "create",
    label: "gvisor: create → first 'echo hi' from the warm pool (SDK)",
    unit: "ms",
    samples,
    baseline: { label: "raw container started ahead and frozen: thaw + 'runsc exec echo hi'", samples: rawSamples },
  });
}

/**
 * Before any timing: one create of each runtime, so that one-time work (a crun sandbox's copy of the
 * template with owners shifted, which the daemon starts making at its start) lands on no figure.
 */
export async function firstCreates(ctx: BenchContext): Promise<void> {
  for (const runtime of ["gvisor", "crun"] as const) {
    const s = await Sandbox.create({ runtime, ...ctx.conn });
    expectHi((await s.commands.run("echo hi")).stdout, `the first ${runtime} sandbox`);
    await s.kill();
  }
}

export async function createScenario(ctx: BenchContext): Promise<void> {
  if (ctx.wants("create", "cold")) for (const runtime of ["gvisor", "crun"] as const) await cold(ctx, runtime);
  if (ctx.wants("create", "warm-pool")) await fromWarmPool(ctx);
  if (ctx.wants("create", "snapshot")) await fromSnapshot(ctx);
}
