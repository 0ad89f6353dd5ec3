import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { sleep, time } from "../host.js";
import type { RuntimeName } from "../raw/runtime.js";
import { THINK_MS } from "./exec.js";

export const PYTHON = "print(sum(range(10**6)))";
const EXPECTED = "499999500000";

function expectSum(stdout: string, what: string): void {
  if (stdout.trim() !== EXPECTED) throw new Error(`${what} printed ${JSON.stringify(stdout)} instead of ${EXPECTED}`);
}

/**
 * A short Python program: in a running sandbox (the command through the SDK against raw `exec`), and end
 * to end (create, run, delete, against one cold raw `run` of the same program).
 */
async function python(ctx: BenchContext, runtime: RuntimeName): Promise<void> {
  ctx.log(`\n# python3 -c '${PYTHON}', ${runtime}`);
  const raw = ctx.raw(runtime);
  const sleeper = await raw.bundle("sleep", ["/bin/sleep", "3600"]);
  const rawId = ctx.id(`py-${runtime}`);
  await raw.start(sleeper, rawId);
  const argv = ["python3", "-c", PYTHON];
  const s = await Sandbox.create({ runtime, idleTimeoutMs: 0, ...ctx.conn });
  const inSandbox: number[] = [];
  const rawExec: number[] = [];
  try {
    await s.commands.run(`python3 -c '${PYTHON}'`);
    await raw.exec(rawId, argv);
    for (let i = 0; i < ctx.profile.pythonRuns; i++) {
      inSandbox.push(await time(async () => expectSum((await s.commands.run(`python3 -c '${PYTHON}'`)).stdout, "the sandbox")));
      await sleep(THINK_MS);
      rawExec.push(await time(async () => expectSum(await raw.exec(rawId, argv), `raw ${raw.tool} exec`)));
      await sleep(THINK_MS);
    }
  } finally {
    await s.kill().catch(() => undefined);
    await raw.remove(rawId);
  }
  ctx.rec.record({
    id: `${runtime}.python.run`,
    section: "python",
    scenario: "python",
    label: `${runtime}: python3 -c '…' in a running sandbox (SDK)`,
    unit: "ms",
    samples: inSandbox,
    baseline: { label: `raw '${raw.tool} exec python3 -c …'`, samples: rawExec },
  });

  const once = await raw.bundle("python", argv);
  const endToEnd: number[] = [];
  const rawRun: number[] = [];
  for (let i = 0; i < ctx.profile.pythonEndToEnd; i++) {
    endToEnd.push(
      await time(async () => {
        const sbx = await Sandbox.create({ runtime, ...ctx.conn });
        expectSum((await sbx.commands.run(`python3 -c '${PYTHON}'`)).stdout, "the sandbox");
        await sbx.kill();
      }),
    );
    rawRun.push(await time(async () => expectSum(await raw.run(once, ctx.id(`py-run-${runtime}-${i}`)), `raw ${raw.tool} run`)));
  }
  ctx.rec.record({
    id: `${runtime}.python.end-to-end`,
    section: "python",
    scenario: "python",
    label: `${runtime}: python end to end: create, run, delete (SDK)`,
    unit: "ms",
    samples: endToEnd,
    baseline: { label: `raw '${raw.tool} run python3 -c …' (cold)`, samples: rawRun },
  });
}

export async function pythonScenario(ctx: BenchContext): Promise<void> {
  for (const runtime of ["gvisor", "crun"] as const) await python(ctx, runtime);
}
