import { PROFILES } from "./context.js";
import { formatValue } from "./format.js";
import type { ConcurrencyLevel, Figure, Target } from "./result.js";
import { ratioText } from "./stats.js";

const ms = (v: number) => formatValue(v, "ms");
/** A difference with its sign: "+0.71 ms", "-10.0 ms". */
const signedMs = (v: number) => `${v < 0 ? "-" : "+"}${ms(Math.abs(v))}`;

/** The targets the project set itself (issues 2, 3 and this benchmark's), checked against one run. */
export function evaluateTargets(input: { figures: Figure[]; concurrency: ConcurrencyLevel[]; mode: "quick" | "full"; wallSeconds: number; complete: boolean }): Target[] {
  const get = (id: string) => input.figures.find((f) => f.id === id);
  const targets: Target[] = [];

  const echo = get("gvisor.exec.echo-api");
  if (echo?.baseline && echo.ratio !== undefined) {
    targets.push({
      key: "echo-5x",
      what: "gVisor 'echo hi' through the API against raw 'runsc exec'",
      target: "at least 5x faster",
      measured: `${ms(echo.stasis.stats.median)} vs ${ms(echo.baseline.stats.median)}: ${ratioText(echo.ratio)}`,
      met: echo.ratio <= 0.2,
    });
  }
  for (const runtime of ["crun", "gvisor"]) {
    const rss = get(`${runtime}.density.agent-rss`);
    if (rss) {
      targets.push({
        key: `agent-rss-${runtime}`,
        what: `guest agent idle RSS (${runtime}${runtime === "gvisor" ? ", as gVisor's kernel counts it" : ""})`,
        target: "< 10 MB",
        measured: `${formatValue(rss.stasis.stats.median, "MiB")} median`,
        met: rss.stasis.stats.median < 10,
      });
    }
  }
  for (const runtime of ["gvisor", "crun"]) {
    const key = get(`${runtime}.pty.keystroke`);
    if (key) {
      targets.push({
        key: `pty-keystroke-5ms-${runtime}`,
        what: `${runtime} terminal keystroke echo round trip (WebSocket → agent's pty → back)`,
        target: "< 5 ms median",
        measured: `${ms(key.stasis.stats.median)}${key.baseline ? ` (local pty ${ms(key.baseline.stats.median)})` : ""}`,
        met: key.stasis.stats.median < 5,
      });
    }
  }
  const paused = get("gvisor.paused.first-command");
  if (paused) targets.push({ key: "paused-5ms", what: "gVisor first command after resuming a paused sandbox", target: "< 5 ms median", measured: ms(paused.stasis.stats.median), met: paused.stasis.stats.median < 5 });
  for (const f of input.figures.filter((x) => /^gvisor\.hibernation\.\d+\.resume$/.test(x.id))) {
    const mb = Number(f.id.split(".")[2]);
    if (!f.baseline || f.ratio === undefined) continue;
    const big = mb >= 200;
    targets.push({
      key: "hibernation-1.2x",
      what: `gVisor resume from hibernation, ${mb} MiB, against raw 'runsc restore'`,
      target: `within 1.2x${big ? ", and under 1 s" : ""}`,
      measured: `${ms(f.stasis.stats.median)} vs ${ms(f.baseline.stats.median)}: ${f.ratio.toFixed(2)}x`,
      met: f.ratio <= 1.2 && (!big || f.stasis.stats.median < 1000),
    });
  }
  const snapshot = get("gvisor.templates.snapshot.first-command");
  if (snapshot) {
    targets.push({
      key: "template-snapshot-250ms",
      what: "gVisor create from a snapshot template → first command (its server already answering)",
      target: "< 250 ms median",
      measured: `${ms(snapshot.stasis.stats.median)}${snapshot.baseline ? ` (raw cold 'runsc run' ${ms(snapshot.baseline.stats.median)})` : ""}`,
      met: snapshot.stasis.stats.median < 250,
    });
  }
  const templatePool = get("gvisor.templates.warm-pool.first-command");
  if (templatePool) {
    targets.push({ key: "template-pool-30ms", what: "gVisor create from a template's warm pool → first 'echo hi'", target: "< 30 ms median", measured: ms(templatePool.stasis.stats.median), met: templatePool.stasis.stats.median < 30 });
  }
  // Issue 17's: a kept kernel against starting Python per snippet, and a pooled interpreter's first run.
  const codeRun = get("gvisor.code.warm-run");
  if (codeRun?.baseline && codeRun.ratio !== undefined) {
    targets.push({
      key: "code-warm-10x",
      what: "gVisor 'x + 1' in a warm code context against raw 'runsc exec python3 -c'",
      target: "at least 10x faster",
      measured: `${ms(codeRun.stasis.stats.median)} vs ${ms(codeRun.baseline.stats.median)}: ${ratioText(codeRun.ratio)}`,
      met: codeRun.ratio <= 0.1,
    });
  }
  const codePool = get("gvisor.code.warm-pool.first-run");
  if (codePool) {
    targets.push({ key: "code-pool-100ms", what: "gVisor create from the code-interpreter warm pool → first runCode", target: "< 100 ms median", measured: ms(codePool.stasis.stats.median), met: codePool.stasis.stats.median < 100 });
  }
  // Issue 13's: what the runtime seam was to make cheap.
  const write = get("gvisor.files.100.write");
  const read = get("gvisor.files.100.read");
  if (write && read) {
    const slowest = Math.min(write.stasis.stats.median, read.stasis.stats.median);
    targets.push({
      key: "files-300mibs",
      what: "gVisor file write and read of 100 MiB through the API",
      target: ">= 300 MiB/s both ways",
      measured: `${formatValue(write.stasis.stats.median, "MiB/s")} write, ${formatValue(read.stasis.stats.median, "MiB/s")} read`,
      met: slowest >= 300,
    });
  }
  for (const runtime of ["gvisor", "crun"]) {
    const rate = get(`${runtime}.network.throughput`);
    if (rate?.baseline) {
      const share = rate.stasis.stats.median / rate.baseline.stats.median;
      targets.push({ key: "network-throughput-50pct", what: `${runtime}: download from the test internet against the host's`, target: ">= 50% of the host's", measured: `${formatValue(rate.stasis.stats.median, "MiB/s")} vs ${formatValue(rate.baseline.stats.median, "MiB/s")}: ${Math.round(share * 100)}%`, met: share >= 0.5 });
    }
    for (const [id, limit, how] of [["first-byte", 1, "direct"], ["first-byte-proxy", 3, "through the egress proxy"]] as const) {
      const f = get(`${runtime}.network.${id}`);
      if (!f?.baseline) continue;
      const added = f.stasis.stats.median - f.baseline.stats.median;
      targets.push({ key: `network-${id}`, what: `${runtime}: latency networking adds to connect + first byte, ${how}`, target: `< ${limit} ms`, measured: `${ms(f.stasis.stats.median)} vs ${ms(f.baseline.stats.median)} from the host: ${signedMs(added)}`, met: added < limit });
    }
  }
  const route = get("gvisor.preview.request");
  if (route?.baseline) {
    const added = route.stasis.stats.median - route.baseline.stats.median;
    targets.push({ key: "preview-1ms", what: "gVisor: latency the preview route adds to a request", target: "< 1 ms at the median", measured: `${ms(route.stasis.stats.median)} vs ${ms(route.baseline.stats.median)} direct: ${signedMs(added)}`, met: added < 1 });
  }
  const routeRate = get("gvisor.preview.throughput");
  if (routeRate?.baseline) {
    const share = routeRate.stasis.stats.median / routeRate.baseline.stats.median;
    targets.push({ key: "preview-throughput-70pct", what: "gVisor: download through the preview route against direct", target: ">= 70% of direct", measured: `${formatValue(routeRate.stasis.stats.median, "MiB/s")} vs ${formatValue(routeRate.baseline.stats.median, "MiB/s")}: ${Math.round(share * 100)}%`, met: share >= 0.7 });
  }
  const errors = get("gvisor.preview.concurrent-errors");
  if (errors) targets.push({ key: "preview-200-clients", what: "200 concurrent keep-alive clients through the preview route", target: "zero errors", measured: `${errors.stasis.stats.median} errors`, met: errors.stasis.stats.median === 0 });
  const wokenByRequest = get("gvisor.preview.first-byte-paused");
  if (wokenByRequest?.baseline) {
    const added = wokenByRequest.stasis.stats.median - wokenByRequest.baseline.stats.median;
    targets.push({ key: "preview-paused-10ms", what: "gVisor: what a paused sandbox adds to a request through the route", target: "< 10 ms at the median", measured: signedMs(added), met: added < 10 });
  }
  const fromDisk = get("gvisor.preview.first-byte-hibernated-raw");
  if (fromDisk?.baseline && fromDisk.ratio !== undefined) {
    targets.push({ key: "preview-hibernated-1.2x", what: "gVisor: a request to a hibernated sandbox through the route, against raw 'runsc restore' + the request", target: "within 1.2x", measured: `${ms(fromDisk.stasis.stats.median)} vs ${ms(fromDisk.baseline.stats.median)}: ${fromDisk.ratio.toFixed(2)}x`, met: fromDisk.ratio <= 1.2 });
  }
  const setupOps = { create: "create", wake: "wake (namespace kept through its hibernation)", "wake-made": "wake (namespace made anew)", fork: "fork" };
  for (const [op, what] of Object.entries(setupOps)) {
    const f = get(`gvisor.network.setup-${op}`);
    if (f) targets.push({ key: `network-setup-${op}`, what: `network setup on the critical path of a gVisor ${what}`, target: "< 15 ms median", measured: ms(f.stasis.stats.median), met: f.stasis.stats.median < 15 });
  }
  const fork = get("gvisor.create.from-snapshot");
  if (fork?.baseline && fork.ratio !== undefined) {
    targets.push({
      key: "fork-1.5x",
      what: "gVisor fork of an idle sandbox → the copy's first 'echo hi', against raw 'runsc restore' + 'runsc exec'",
      target: "within 1.5x",
      measured: `${ms(fork.stasis.stats.median)} vs ${ms(fork.baseline.stats.median)}: ${fork.ratio.toFixed(2)}x`,
      met: fork.ratio <= 1.5,
    });
  }
  for (const [runtime, limit] of [["gvisor", 1.15], ["crun", 2]] as const) {
    const create = get(`${runtime}.create.first-command`);
    if (!create?.baseline || create.ratio === undefined) continue;
    targets.push({
      key: `create-${runtime}`,
      what: `${runtime === "gvisor" ? "gVisor" : "crun"} cold create → first 'echo hi', against a raw cold '${runtime === "gvisor" ? "runsc" : "crun"} run'`,
      target: `within ${limit}x`,
      measured: `${ms(create.stasis.stats.median)} vs ${ms(create.baseline.stats.median)}: ${create.ratio.toFixed(2)}x`,
      met: create.ratio <= limit,
    });
  }
  const burstErrors = get("gvisor.templates.burst.errors");
  if (burstErrors) {
    const burst = get("gvisor.templates.burst.create");
    const wall = get("gvisor.templates.burst.wall");
    const errors = burstErrors.stasis.stats.max;
    targets.push({
      key: "template-burst-errors",
      what: `burst: ${PROFILES[input.mode].templateBurst} creates at once from a snapshot template${input.mode === "quick" ? ` (${PROFILES.full.templateBurst} in the full run)` : ""}`,
      target: "zero errors",
      measured: `${errors} error${errors === 1 ? "" : "s"}${wall ? `; all replied in ${formatValue(wall.stasis.stats.median, "s")}` : ""}${burst ? `, per create p50 ${ms(burst.stasis.stats.median)}, p99 ${ms(burst.stasis.stats.p99)}` : ""}`,
      met: errors === 0,
    });
  }
  const top = input.concurrency.reduce<ConcurrencyLevel | undefined>((a, l) => (!a || l.clients > a.clients ? l : a), undefined);
  if (top) {
    targets.push({
      key: "concurrency-errors",
      what: `concurrency: ${top.clients} clients creating, using and deleting a sandbox at once${top.clients < 200 ? " (200 in the full run)" : ""}`,
      target: "zero errors",
      measured: `${top.stasis.errors} errors of ${top.clients}`,
      met: top.stasis.errors === 0,
    });
    const worst = input.concurrency.reduce((a, l) => (l.stasis.health.median > a.stasis.health.median ? l : a), top);
    targets.push({
      key: "healthz",
      what: "daemon responsive during the concurrency runs (GET /healthz every ~100 ms)",
      target: "median < 50 ms at every level",
      measured: `worst median ${ms(worst.stasis.health.median)} (p95 ${ms(worst.stasis.health.p95)}, max ${ms(worst.stasis.health.max)}) at ${worst.clients} clients`,
      met: input.concurrency.every((l) => l.stasis.health.median < 50 && l.stasis.health.failures === 0),
    });
  }
  if (input.complete) {
    const limit = input.mode === "quick" ? 180 : 1200;
    targets.push({
      key: "wall-time",
      what: `the ${input.mode} bench's wall time`,
      target: `under ${limit / 60} minutes`,
      measured: `${Math.floor(input.wallSeconds / 60)} min ${Math.round(input.wallSeconds % 60)} s`,
      met: input.wallSeconds < limit,
    });
  }
  return targets;
}
