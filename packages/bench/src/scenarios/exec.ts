import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { sleep, time } from "../host.js";
import type { RuntimeName } from "../raw/runtime.js";

/** An agent thinks between commands: spaced round trips are the common case. */
export const THINK_MS = 50;

/** `POST /v1/sandboxes/{id}/commands/run` with plain fetch: the API without the SDK. */
export async function apiRun(conn: { apiUrl: string; apiKey: string }, id: string, cmd: string | string[]): Promise<{ stdout: string; exitCode: number }> {
  const res = await fetch(`${conn.apiUrl}/v1/sandboxes/${id}/commands/run`, {
    method: "POST",
    headers: { authorization: `Bearer ${conn.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ cmd }),
  });
  const body = (await res.json()) as { stdout: string; exitCode: number };
  if (res.status !== 200) throw new Error(`commands/run answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

function expectHi(stdout: string, what: string): void {
  if (stdout.trim() !== "hi") throw new Error(`${what} printed ${JSON.stringify(stdout)} instead of "hi"`);
}

/**
 * `echo hi` round trips in a running sandbox: plain HTTP, the SDK, back to back, and as argv (which always
 * creates a process), each against a raw `runsc exec` / `crun exec` in a running raw container.
 */
async function echo(ctx: BenchContext, runtime: RuntimeName): Promise<void> {
  ctx.log(`\n# 'echo hi' round trips, ${runtime}`);
  const n = ctx.profile.echoes;
  const raw = ctx.raw(runtime);
  const bundle = await raw.bundle("sleep", ["/bin/sleep", "3600"]);
  const rawId = ctx.id(`exec-${runtime}`);
  await raw.start(bundle, rawId);
  const s = await Sandbox.create({ runtime, idleTimeoutMs: 0, ...ctx.conn });
  try {
    for (let i = 0; i < 5; i++) {
      await s.commands.run("echo hi");
      await apiRun(ctx.conn, s.id, "echo hi");
      await raw.exec(rawId, ["/bin/echo", "hi"]);
    }
    const api: number[] = [];
    const sdk: number[] = [];
    const rawSpaced: number[] = [];
    for (let i = 0; i < n; i++) {
      api.push(await time(async () => expectHi((await apiRun(ctx.conn, s.id, "echo hi")).stdout, "the API")));
      await sleep(THINK_MS);
      sdk.push(await time(async () => expectHi((await s.commands.run("echo hi")).stdout, "the SDK")));
      await sleep(THINK_MS);
      rawSpaced.push(await time(async () => expectHi(await raw.exec(rawId, ["/bin/echo", "hi"]), `raw ${raw.tool} exec`)));
      await sleep(THINK_MS);
    }
    const burst: number[] = [];
    const rawBurst: number[] = [];
    for (let i = 0; i < n; i++) burst.push(await time(() => s.commands.run("echo hi")));
    for (let i = 0; i < n; i++) rawBurst.push(await raw.timeExec(rawId, ["/bin/echo", "hi"]));
    const argv: number[] = [];
    for (let i = 0; i < n; i++) argv.push(await time(() => s.commands.run(["/bin/echo", "hi"])));

    const rawLabel = `raw '${raw.tool} exec echo hi'`;
    ctx.rec.record({ id: `${runtime}.exec.echo-api`, section: "exec", scenario: "exec", label: `${runtime}: 'echo hi' round trip (HTTP API)`, unit: "ms", samples: api, baseline: { label: rawLabel, samples: rawSpaced } });
    ctx.rec.record({ id: `${runtime}.exec.echo-sdk`, section: "exec", scenario: "exec", label: `${runtime}: 'echo hi' round trip (SDK)`, unit: "ms", samples: sdk, baseline: { label: rawLabel, samples: rawSpaced } });
    ctx.rec.record({ id: `${runtime}.exec.echo-burst`, section: "exec", scenario: "exec", label: `${runtime}: 'echo hi' back to back (SDK)`, unit: "ms", samples: burst, baseline: { label: `${rawLabel}, back to back`, samples: rawBurst } });
    ctx.rec.record({ id: `${runtime}.exec.argv`, section: "exec", scenario: "exec", label: `${runtime}: '/bin/echo hi' as argv, back to back (SDK, spawns)`, unit: "ms", samples: argv, baseline: { label: `${rawLabel}, back to back`, samples: rawBurst } });
  } finally {
    await s.kill().catch(() => undefined);
    await raw.remove(rawId);
  }
}

export async function execScenario(ctx: BenchContext): Promise<void> {
  for (const runtime of ["gvisor", "crun"] as const) await echo(ctx, runtime);
}
