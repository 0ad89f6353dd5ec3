import { formatValue } from "../format.js";
import { SECTIONS, type BenchResult, type ConcurrencyLevel, type DensityResult, type Figure } from "../result.js";
import { ratioText } from "../stats.js";
import type { Chart } from "./charts.js";
import { NOTES, TARGET_NOTES } from "./notes.js";

const SCENARIO_ORDER = ["create", "templates", "exec", "python", "code", "paused", "hibernation", "files", "pty", "network", "network-setup", "preview", "concurrency", "density"];

const cell = (text: string) => text.replace(/\|/g, "\\|");
const fmt = (f: Figure, v: number) => formatValue(v, f.unit);

/** Whether Stasis is slower than its baseline in this figure (by more than 2%, below the noise of a run). */
export function isSlower(f: Figure): boolean {
  return f.ratio !== undefined && Number.isFinite(f.ratio) && f.ratio > 1.02;
}

function figureTable(figures: Figure[]): string[] {
  const lines = ["| measurement | n | median | p95 | p99 | baseline | baseline median / p95 / p99 | Stasis vs baseline |", "|---|---:|---:|---:|---:|---|---:|---|"];
  for (const f of figures) {
    const s = f.stasis.stats;
    const b = f.baseline;
    const ratio = f.ratio === undefined ? "" : isSlower(f) ? `**${ratioText(f.ratio)}**` : ratioText(f.ratio);
    lines.push(
      `| ${cell(f.label)} | ${s.n} | ${fmt(f, s.median)} | ${fmt(f, s.p95)} | ${fmt(f, s.p99)} | ${b ? cell(b.label) : "-"} | ${b ? `${fmt(f, b.stats.median)} / ${fmt(f, b.stats.p95)} / ${fmt(f, b.stats.p99)} (n=${b.stats.n})` : "-"} | ${ratio} |`,
    );
  }
  return lines;
}

function concurrencyTable(levels: ConcurrencyLevel[]): string[] {
  const ms = (v: number) => formatValue(v, "ms");
  const lines = [
    "| clients | Stasis: per s | median | p95 | p99 | errors | /healthz median / p95 / max (polls) | raw: per s | raw p99 | raw errors |",
    "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
  ];
  for (const l of levels) {
    const s = l.stasis;
    const b = l.baseline;
    lines.push(
      `| ${l.clients} | ${s.throughput.toFixed(2)} | ${ms(s.latency.median)} | ${ms(s.latency.p95)} | ${ms(s.latency.p99)} | ${s.errors === 0 ? "0" : `**${s.errors}**`} | ${ms(s.health.median)} / ${ms(s.health.p95)} / ${ms(s.health.max)} (${s.health.n}${s.health.failures ? `, **${s.health.failures} failed**` : ""}) | ${b ? b.throughput.toFixed(2) : "-"} | ${b ? ms(b.latency.p99) : "-"} | ${b ? String(b.errors) : "-"} |`,
    );
  }
  const errors = levels.flatMap((l) => [
    ...l.stasis.errorMessages.map((e) => `- ${l.clients} clients, Stasis: ${e.count}× \`${e.message}\``),
    ...(l.baseline?.errorMessages ?? []).map((e) => `- ${l.clients} clients, raw: ${e.count}× \`${e.message}\``),
  ]);
  if (errors.length > 0) lines.push("", "Errors, exactly as the clients saw them:", "", ...errors);
  return lines;
}

function densityTable(results: DensityResult[]): string[] {
  const n1 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(1));
  const lines = [
    "| runtime | state | sandboxes measured | host MiB each | MemAvailable drop each | cgroup MiB each | runtime outside the cgroup | idle CPU each | disk MiB each | projected capacity | limited by |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const d of results) {
    for (const [state, s] of [["running", d.running], ["paused", d.paused], ["hibernated", d.hibernated]] as const) {
      if (!s) continue;
      lines.push(
        `| ${d.runtime} | ${state} | ${d.n} | **${n1(s.hostMiBPerSandbox)}** | ${n1(s.memAvailableDropMiBPerSandbox)} | ${n1(s.cgroupMiBPerSandbox)} | ${n1(s.outsideMiBPerSandbox)} | ${s.idleCpuPercentPerSandbox.toFixed(2)}% | ${n1(s.diskMiBPerSandbox)} | ~${s.projected ?? "∞"} (projected) | ${cell(s.limitedBy)} |`,
      );
    }
  }
  const d0 = results[0];
  if (d0) {
    lines.push(
      "",
      "**host MiB each** is the larger of the MemAvailable drop and what is accounted to the sandbox (its memory cgroup plus the anonymous memory of its runtime processes outside it, e.g. gVisor's `runsc run` parent), so that noise from other tenants can only make the projection more conservative. " +
        `Projected from MemAvailable at the start (${(d0.memAvailableMiB / 1024).toFixed(1)} GiB) and ${d0.cores} cores; idle CPU measured over ${(d0.windowMs / 1000).toFixed(0)} s. ` +
        `A default install also caps running and paused sandboxes at STASIS_MAX_SANDBOXES=${d0.daemonDefaultCap} (hibernated ones do not count). ` +
        "Hibernated sandboxes hold no RAM and no CPU: their cost is disk (the checkpoint image plus the written blocks of their own disk image).",
    );
  }
  return lines;
}

export interface MarkdownOptions {
  /** Path of the charts folder relative to the markdown file, e.g. "bench". */
  chartsDir: string;
}

/** The report: how to reproduce, the machine, targets, then per scenario the table, the chart and notes. */
export function renderMarkdown(result: BenchResult, charts: Chart[], options: MarkdownOptions): string {
  const m = result.machine;
  const out: string[] = [
    "# Benchmarks",
    "",
    "<!-- Generated by `stasis bench` (packages/bench). Do not edit: the explanations live in packages/bench/src/report/notes.ts. -->",
    "",
    "Stasis beside what a user would run without it, **in the same run**: the raw `runsc` and `crun` CLIs on the same template rootfs, the bare cgroup freezer, and the host's `cp`. Stasis and baseline samples alternate wherever the scenario allows, so the ratios hold on a noisy machine even when absolute figures move. Percentiles interpolate between ranks: with fewer than 100 samples the p99 sits close to the maximum.",
    "",
    "**Reproduce** on a host set up by `scripts/up.sh` (root; the `base` template built):",
    "",
    "```sh",
    "sudo npm run bench               # everything, under 20 minutes on 2 cores",
    "sudo npm run bench -- --quick    # fewer samples, 50 MiB working set, 1/10/50 clients: under 4 minutes",
    "sudo stasis bench --sections exec,paused --out /tmp/report   # a subset, written elsewhere",
    "sudo stasis bench --compare docs/bench/results.json          # run, then print old vs new per figure",
    "```",
    "",
    "The command starts its own daemon (private data and run directories, a random key, a free port), runs the scenarios, prints the table, and writes this file, the charts in `docs/bench/`, every figure as JSON in `docs/bench/results.json` (and a timestamped copy in `bench/results/`), then removes its daemon, sandboxes and raw containers, also when interrupted.",
    "",
    "## This run",
    "",
    `- **Command**: \`${result.command}\` (${result.mode} mode${result.sections.length < SECTIONS.length ? `, sections ${result.sections.join(", ")}` : ""})`,
    `- **Date**: ${result.startedAt.replace("T", " ").replace(/\.\d+Z$/, " UTC")}; wall time ${Math.floor(result.wallSeconds / 60)} min ${Math.round(result.wallSeconds % 60)} s`,
    `- **Machine**: ${m.cpuModel}, ${m.cores} cores, ${(m.memTotalMiB / 1024).toFixed(1)} GiB RAM; ${m.os}, kernel ${m.kernel}; ${m.cgroups} cgroups`,
    `- **Runtimes**: runsc ${m.runsc} (systrap), crun ${m.crun}; Node.js ${m.node}`,
    "",
  ];
  if (result.targets.length > 0) {
    out.push("## Targets", "", "| target | measured | |", "|---|---|---|");
    for (const t of result.targets) out.push(`| ${cell(t.what)}: ${cell(t.target)} | ${cell(t.measured)} | ${t.met ? "met" : "**not met**"} |`);
    out.push("");
    const missed = result.targets.filter((t) => !t.met && t.key && TARGET_NOTES[t.key]);
    if (missed.length > 0) {
      out.push("Why the targets not met are not met:", "");
      for (const t of missed) out.push(`- **${t.what}**: ${TARGET_NOTES[t.key!]}`);
      out.push("");
    }
  }
  if (result.failures.length > 0 || result.daemonErrors.length > 0) {
    out.push("## What went wrong in this run", "");
    for (const f of result.failures) out.push(`- section **${f.section}** did not finish: \`${f.error.replace(/`/g, "'").replace(/\n/g, " ")}\``);
    if (result.daemonErrors.length > 0) {
      out.push(`- ${result.daemonErrors.length} error line(s) from the daemons, or state they left behind that the bench had to remove; the distinct ones:`);
      for (const line of [...new Set(result.daemonErrors)].slice(0, 20)) out.push(`  - \`${line.replace(/`/g, "'").slice(0, 400)}\``);
    }
    out.push("");
  }
  const scenarios = SCENARIO_ORDER.filter((s) => result.figures.some((f) => f.scenario === s) || (s === "concurrency" && result.concurrency.length) || (s === "density" && result.density.length));
  for (const scenario of scenarios) {
    const notes = NOTES[scenario];
    const figures = result.figures.filter((f) => f.scenario === scenario);
    out.push(`## ${notes?.title ?? scenario}`, "");
    if (notes) out.push(notes.measures, "");
    if (scenario === "concurrency") out.push(...concurrencyTable(result.concurrency), "");
    if (scenario === "density") out.push(...densityTable(result.density), "");
    if (figures.length > 0) out.push(...figureTable(figures), "");
    for (const chart of charts.filter((c) => c.scenario === scenario)) out.push(`![${chart.title}](${options.chartsDir}/${chart.file})`, "");
    const slower = figures.filter(isSlower);
    const concurrencySlower = scenario === "concurrency" && result.concurrency.some((l) => l.baseline && l.stasis.throughput < l.baseline.throughput);
    if (notes?.slower && (slower.length > 0 || concurrencySlower)) {
      const which = slower.length > 0 ? ` (${slower.map((f) => `${f.label}: ${ratioText(f.ratio!)}`).join("; ")})` : "";
      out.push(`**Where Stasis is slower than its baseline${which}, and why.** ${notes.slower}`, "");
    }
  }
  return out.join("\n");
}
