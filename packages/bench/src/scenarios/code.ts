import { existsSync } from "node:fs";
import { join } from "node:path";
import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { sleep, time } from "../host.js";
import { poolReady } from "./create.js";
import { THINK_MS } from "./exec.js";

/** Built by scripts/setup.sh from examples/templates/code-interpreter. */
export const CODE_TEMPLATE = "code-interpreter";

function expectText(actual: string | undefined, expected: string, what: string): void {
  if (actual !== expected) throw new Error(`${what} returned ${JSON.stringify(actual)} instead of ${expected}`);
}

/**
 * A warm run of `x + 1` in a Python context of a running code-interpreter sandbox (SDK → daemon → the
 * sandbox's interpreter → its IPython kernel), against raw `runsc exec python3 -c` in a running raw
 * container: what an agent pays per cell with a kept kernel, against starting Python per snippet.
 */
async function warmRun(ctx: BenchContext): Promise<void> {
  ctx.log(`\n# code interpreter: a warm 'x + 1' in a context, gvisor`);
  const raw = ctx.raw("gvisor", "code");
  const sleeper = await raw.bundle("sleep", ["/bin/sleep", "3600"]);
  const rawId = ctx.id("code-gvisor");
  await raw.start(sleeper, rawId);
  const argv = ["python3", "-c", "x = 1; print(x + 1)"];
  const s = await Sandbox.create({ template: CODE_TEMPLATE, idleTimeoutMs: 0, ...ctx.conn });
  const runs: number[] = [];
  const rawExec: number[] = [];
  try {
    await s.code.run("x = 1");
    expectText((await s.code.run("x + 1")).text, "2", "the context");
    await raw.exec(rawId, argv);
    for (let i = 0; i < ctx.profile.codeRuns; i++) {
      runs.push(await time(async () => expectText((await s.code.run("x + 1")).text, "2", "the context")));
      await sleep(THINK_MS);
      rawExec.push(await time(async () => expectText((await raw.exec(rawId, argv)).trim(), "2", `raw ${raw.tool} exec`)));
      await sleep(THINK_MS);
    }
  } finally {
    await s.kill().catch(() => undefined);
    await raw.remove(rawId);
  }
  ctx.rec.record({
    id: "gvisor.code.warm-run",
    section: "code",
    scenario: "code",
    label: "gvisor: 'x + 1' in a warm Python context (SDK sandbox.code.run)",
    unit: "ms",
    samples: runs,
    baseline: { label: `raw '${raw.tool} exec python3 -c …' in a running container`, samples: rawExec },
  });
}

/** Create → first `1 + 1` through sandbox.code.run: from the template's snapshot, then from its warm pool. */
async function firstRun(ctx: BenchContext): Promise<void> {
  ctx.log(`\n# code interpreter: create → first run, from the snapshot and from a warm pool of 1, gvisor`);
  const once = async (conn: typeof ctx.conn, via: string): Promise<number> => {
    let sandbox: Sandbox | undefined;
    try {
      const ms = await time(async () => {
        sandbox = await Sandbox.create({ template: CODE_TEMPLATE, ...conn });
        expectText((await sandbox.code.run("1 + 1")).text, "2", "the new sandbox");
      });
      if (sandbox?.info.createdVia !== via) throw new Error(`the sandbox was created via ${sandbox?.info.createdVia}, not ${via}`);
      return ms;
    } finally {
      await sandbox?.kill().catch(() => undefined);
    }
  };
  const snapshot: number[] = [];
  for (let i = 0; i < ctx.profile.codeCreates; i++) {
    snapshot.push(await once(ctx.conn, "snapshot"));
    await sleep(1_500); // the disk pool refills
  }
  ctx.rec.record({ id: "gvisor.code.snapshot.first-run", section: "code", scenario: "code", label: "gvisor: create from the code-interpreter snapshot → first run", unit: "ms", samples: snapshot });

  // A second private daemon holds the pool (see the templates section: a pool in the template would be
  // kept by every daemon sharing the templates folder), with sandbox addresses of its own: two daemons on
  // the default range give their first sandboxes the same address, and the host routes it to one of them.
  const pool = await ctx.startDaemon("cpool", { STASIS_WARM_POOL: `${CODE_TEMPLATE}=1`, STASIS_NETWORK_RANGE: "10.210.0.0/20" });
  const pooled: number[] = [];
  try {
    for (let i = 0; i < ctx.profile.codeCreates; i++) {
      const deadline = Date.now() + 120_000;
      while (((await poolReady(pool.conn, CODE_TEMPLATE)) ?? 0) < 1) {
        if (Date.now() > deadline) throw new Error(`the warm pool of ${CODE_TEMPLATE} held no ready member within 120 s`);
        await sleep(100);
      }
      await sleep(300); // the refill's restore has settled
      pooled.push(await once(pool.conn, "warm_pool"));
    }
  } finally {
    await ctx.retireDaemon(pool);
  }
  ctx.rec.record({ id: "gvisor.code.warm-pool.first-run", section: "code", scenario: "code", label: "gvisor: create from the code-interpreter warm pool → first run", unit: "ms", samples: pooled });
}

export async function codeScenario(ctx: BenchContext): Promise<void> {
  if (!existsSync(join(ctx.templatesDir, CODE_TEMPLATE))) throw new Error(`no ${CODE_TEMPLATE} template in ${ctx.templatesDir}: run scripts/setup.sh (it builds examples/templates/code-interpreter)`);
  await warmRun(ctx);
  await firstRun(ctx);
}
