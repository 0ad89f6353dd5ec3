import { statfsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { mib } from "../format.js";
import { cgroupCpuUsec, cgroupMemory, diskUsage, mapLimit, outsideAnonPss, sleep, steadyMemAvailable } from "../host.js";
import type { RuntimeName } from "../raw/runtime.js";
import type { DensityState } from "../result.js";

/** What a default install allows (STASIS_MAX_SANDBOXES); the bench's own daemon allows more. */
const DAEMON_DEFAULT_CAP = 200;

/** Mean CPU of the sandboxes' cgroups over `windowMs`, in % of one core per sandbox. */
async function idleCpuPercent(ids: string[], windowMs: number): Promise<number> {
  const before = ids.map((id) => cgroupCpuUsec(`/stasis/${id}`));
  const t = performance.now();
  await sleep(windowMs);
  const elapsedUs = (performance.now() - t) * 1000;
  const after = ids.map((id) => cgroupCpuUsec(`/stasis/${id}`));
  const used = after.map((a, i) => a - (before[i] ?? NaN)).filter(Number.isFinite);
  if (used.length === 0) return NaN;
  return (used.reduce((a, b) => a + b, 0) / used.length / elapsedUs) * 100;
}

function meanMiB(values: number[]): number {
  const finite = values.filter(Number.isFinite);
  return finite.length ? mib(finite.reduce((a, b) => a + b, 0) / finite.length) : NaN;
}

/**
 * Density: the machine cannot be filled to memory pressure on a shared box, so N idle sandboxes are
 * measured (MemAvailable before and after, their memory cgroups, their CPU over an idle window), running,
 * then paused, then hibernated (gVisor), and the capacity is projected from the per-sandbox cost.
 */
async function density(ctx: BenchContext, runtime: RuntimeName, n: number): Promise<void> {
  ctx.log(`\n# density: ${n} idle ${runtime} sandboxes`);
  const windowMs = ctx.profile.densityWindowMs;
  const cores = availableParallelism();
  await sleep(1_000);
  const memBefore = await steadyMemAvailable();
  const sandboxes = await mapLimit(Array.from({ length: n }, (_, i) => i), 4, () =>
    Sandbox.create({ runtime, idleTimeoutMs: 0, hibernateAfterMs: 0, timeoutMs: 3_600_000, ...ctx.conn }),
  );
  const ids = sandboxes.map((s) => s.id);
  try {
    // One command each (as a used sandbox would have run), and the agent's own RSS as its kernel sees it.
    const rss = await mapLimit(sandboxes, 4, async (s) => {
      const r = await s.commands.run("grep VmRSS /proc/1/status");
      return mib(Number(/(\d+)/.exec(r.stdout)?.[1] ?? NaN) * 1024);
    });
    await sleep(ctx.profile.densitySettleMs);
    const memRunning = await steadyMemAvailable();
    const cgRunning = ids.map((id) => cgroupMemory(`/stasis/${id}`));
    const outRunning = ids.map((id) => outsideAnonPss(id, `/stasis/${id}`));
    const cpuRunning = await idleCpuPercent(ids, windowMs);

    await mapLimit(sandboxes, 8, (s) => s.pause());
    await sleep(ctx.profile.densitySettleMs);
    const memPaused = await steadyMemAvailable();
    const cgPaused = ids.map((id) => cgroupMemory(`/stasis/${id}`));
    const outPaused = ids.map((id) => outsideAnonPss(id, `/stasis/${id}`));
    const cpuPaused = await idleCpuPercent(ids, windowMs);

    const drop = (after: number) => mib((memBefore - after) / n);
    // MemAvailable moves with every other tenant; what the sandboxes are charged for does not. The projection
    // takes the larger of the two, so that noise can only make it more conservative.
    const cost = (memDrop: number, cgroup: number, outside: number) => Math.max(memDrop, cgroup + outside);
    const project = (costMiB: number): number | null => (costMiB > 0 ? Math.floor(mib(memBefore) / costMiB) : null);
    const state = (after: number, cg: number[], out: number[], cpu: number) => {
      const memDrop = drop(after);
      const cgroup = meanMiB(cg);
      const outside = meanMiB(out);
      return { hostMiBPerSandbox: cost(memDrop, cgroup, outside), memAvailableDropMiBPerSandbox: memDrop, cgroupMiBPerSandbox: cgroup, outsideMiBPerSandbox: outside, idleCpuPercentPerSandbox: cpu };
    };
    const r = state(memRunning, cgRunning, outRunning, cpuRunning);
    const byMemory = project(r.hostMiBPerSandbox);
    const byCpu = cpuRunning > 0.01 ? Math.floor((cores * 100) / cpuRunning) : null;
    const running: DensityState = {
      ...r,
      projected: byMemory !== null && byCpu !== null ? Math.min(byMemory, byCpu) : (byMemory ?? byCpu),
      limitedBy: byCpu !== null && (byMemory === null || byCpu < byMemory) ? `idle CPU (${cores} cores / ${cpuRunning.toFixed(2)}% each)` : "memory (MemAvailable / host MiB each)",
    };
    const p = state(memPaused, cgPaused, outPaused, cpuPaused);
    const paused: DensityState = { ...p, projected: project(p.hostMiBPerSandbox), limitedBy: "memory (MemAvailable / host MiB each); no CPU while frozen" };

    let hibernated: DensityState | undefined;
    if (runtime === "gvisor") {
      await mapLimit(sandboxes, 2, (s) => s.hibernate());
      await sleep(ctx.profile.densitySettleMs);
      const memHibernated = await steadyMemAvailable();
      const disk = await mapLimit(ids, 4, (id) => diskUsage(`${ctx.daemon.dataDir}/sandboxes/${id}`));
      const diskMiB = meanMiB(disk);
      const fs = statfsSync(ctx.daemon.dataDir);
      const freeMiB = mib(fs.bavail * fs.bsize);
      const memDrop = drop(memHibernated);
      hibernated = {
        hostMiBPerSandbox: Math.max(0, memDrop),
        memAvailableDropMiBPerSandbox: memDrop,
        cgroupMiBPerSandbox: 0,
        outsideMiBPerSandbox: meanMiB(ids.map((id) => outsideAnonPss(id, `/stasis/${id}`))),
        idleCpuPercentPerSandbox: 0,
        diskMiBPerSandbox: diskMiB,
        projected: diskMiB > 0 ? Math.floor(freeMiB / diskMiB) : null,
        limitedBy: `disk (${(freeMiB / 1024).toFixed(0)} GiB free / disk MiB each); no RAM, no CPU`,
      };
    }
    ctx.density.push({ runtime, n, memAvailableMiB: mib(memBefore), cores, windowMs, running, paused, ...(hibernated ? { hibernated } : {}), daemonDefaultCap: DAEMON_DEFAULT_CAP });
    ctx.rec.record({ id: `${runtime}.density.cgroup`, section: "density", scenario: "density", label: `${runtime}: idle memory per sandbox (its cgroup)`, unit: "MiB", samples: cgRunning.map(mib) });
    ctx.rec.record({ id: `${runtime}.density.agent-rss`, section: "density", scenario: "density", label: `${runtime}: guest agent idle RSS (VmRSS in the sandbox)`, unit: "MiB", samples: rss });
    const line = (name: string, st: DensityState) =>
      `  ${name.padEnd(11)} ${st.hostMiBPerSandbox.toFixed(1)} MiB each (MemAvailable drop ${st.memAvailableDropMiBPerSandbox.toFixed(1)}, cgroup ${st.cgroupMiBPerSandbox.toFixed(1)}, runtime outside it ${st.outsideMiBPerSandbox.toFixed(1)})` +
      `${st.diskMiBPerSandbox !== undefined ? `, ${st.diskMiBPerSandbox.toFixed(1)} MiB disk` : ""}, ${st.idleCpuPercentPerSandbox.toFixed(2)}% CPU → ~${st.projected ?? "∞"} projected (${st.limitedBy})`;
    ctx.log([line("running:", running), line("paused:", paused), ...(hibernated ? [line("hibernated:", hibernated)] : [])].join("\n"));
  } finally {
    await mapLimit(sandboxes, 8, (s) => s.kill().catch(() => undefined));
  }
}

export async function densityScenario(ctx: BenchContext): Promise<void> {
  await density(ctx, "gvisor", ctx.profile.density.gvisor);
  await density(ctx, "crun", ctx.profile.density.crun);
}
