import { readFileSync } from "node:fs";
import { formatValue } from "./format.js";
import type { BenchResult, Unit } from "./result.js";

/** One number of a run, under a key that stays the same across runs and commits. */
export interface Metric {
  id: string;
  label: string;
  unit: Unit | "x";
  better: "lower" | "higher";
  value: number;
}

/** Every figure of a result as flat metrics: medians, p95, p99, baselines and ratios, concurrency, density. */
export function flatten(result: BenchResult): Metric[] {
  const out: Metric[] = [];
  for (const f of result.figures) {
    const s = f.stasis.stats;
    out.push({ id: `${f.id}.median`, label: `${f.label}: median`, unit: f.unit, better: f.better, value: s.median });
    out.push({ id: `${f.id}.p95`, label: `${f.label}: p95`, unit: f.unit, better: f.better, value: s.p95 });
    out.push({ id: `${f.id}.p99`, label: `${f.label}: p99`, unit: f.unit, better: f.better, value: s.p99 });
    if (f.baseline) {
      out.push({ id: `${f.id}.baseline.median`, label: `${f.label}: baseline (${f.baseline.label}) median`, unit: f.unit, better: f.better, value: f.baseline.stats.median });
      if (f.ratio !== undefined) out.push({ id: `${f.id}.ratio`, label: `${f.label}: Stasis/baseline (>1 slower)`, unit: "x", better: "lower", value: f.ratio });
    }
  }
  for (const l of result.concurrency) {
    const key = `concurrency.${l.runtime}.${l.clients}`;
    const name = `concurrency ${l.clients} clients`;
    out.push({ id: `${key}.throughput`, label: `${name}: throughput`, unit: "/s", better: "higher", value: l.stasis.throughput });
    out.push({ id: `${key}.p99`, label: `${name}: p99 per client`, unit: "ms", better: "lower", value: l.stasis.latency.p99 });
    out.push({ id: `${key}.errors`, label: `${name}: errors`, unit: "count", better: "lower", value: l.stasis.errors });
    out.push({ id: `${key}.healthz.median`, label: `${name}: /healthz median`, unit: "ms", better: "lower", value: l.stasis.health.median });
    if (l.baseline) out.push({ id: `${key}.baseline.throughput`, label: `${name}: raw throughput`, unit: "/s", better: "higher", value: l.baseline.throughput });
  }
  for (const d of result.density) {
    for (const [state, s] of [["running", d.running], ["paused", d.paused], ["hibernated", d.hibernated]] as const) {
      if (!s) continue;
      const key = `density.${d.runtime}.${state}`;
      const name = `density ${d.runtime} ${state}`;
      out.push({ id: `${key}.host-mib`, label: `${name}: host MiB per sandbox`, unit: "MiB", better: "lower", value: s.hostMiBPerSandbox });
      out.push({ id: `${key}.cgroup-mib`, label: `${name}: cgroup MiB per sandbox`, unit: "MiB", better: "lower", value: s.cgroupMiBPerSandbox });
      out.push({ id: `${key}.idle-cpu`, label: `${name}: idle CPU per sandbox`, unit: "%", better: "lower", value: s.idleCpuPercentPerSandbox });
      if (s.projected !== null) out.push({ id: `${key}.projected`, label: `${name}: projected capacity`, unit: "count", better: "higher", value: s.projected });
    }
  }
  return out;
}

export interface ComparisonRow {
  id: string;
  label: string;
  unit: Metric["unit"];
  old: number | undefined;
  new: number | undefined;
  /** (new - old) / old in percent; undefined when either side is missing or old is 0. */
  changePercent: number | undefined;
  /** better / worse beyond `threshold` percent in the metric's good direction, else "same"; "only old"/"only new". */
  verdict: "better" | "worse" | "same" | "only old" | "only new";
}

/** Matches metrics by id, in the new run's order (then those only the old run has). */
export function compareResults(oldResult: BenchResult, newResult: BenchResult, thresholdPercent = 5): ComparisonRow[] {
  const oldMetrics = new Map(flatten(oldResult).map((m) => [m.id, m]));
  const rows: ComparisonRow[] = [];
  const seen = new Set<string>();
  for (const m of flatten(newResult)) {
    seen.add(m.id);
    const o = oldMetrics.get(m.id);
    if (!o) {
      rows.push({ id: m.id, label: m.label, unit: m.unit, old: undefined, new: m.value, changePercent: undefined, verdict: "only new" });
      continue;
    }
    const finite = Number.isFinite(o.value) && Number.isFinite(m.value);
    const change = finite && o.value !== 0 ? ((m.value - o.value) / Math.abs(o.value)) * 100 : undefined;
    // From zero (errors: 0 -> 3) there is no percentage, but there is a direction.
    const up = change === undefined ? (finite && m.value > o.value ? Infinity : finite && m.value < o.value ? -Infinity : 0) : change;
    const improved = m.better === "lower" ? up < -thresholdPercent : up > thresholdPercent;
    const regressed = m.better === "lower" ? up > thresholdPercent : up < -thresholdPercent;
    rows.push({ id: m.id, label: m.label, unit: m.unit, old: o.value, new: m.value, changePercent: change, verdict: improved ? "better" : regressed ? "worse" : "same" });
  }
  for (const [id, o] of oldMetrics) if (!seen.has(id)) rows.push({ id, label: o.label, unit: o.unit, old: o.value, new: undefined, changePercent: undefined, verdict: "only old" });
  return rows;
}

const show = (v: number | undefined, unit: Metric["unit"]) => (v === undefined ? "-" : unit === "x" ? (Number.isFinite(v) ? `${v.toFixed(2)}x` : "-") : formatValue(v, unit));

/** Old vs new per figure, as text: one line each, with the change in percent. */
export function renderComparison(rows: ComparisonRow[], oldName: string, newName: string): string {
  const labelW = Math.min(90, Math.max(...rows.map((r) => r.label.length), 10));
  const header = `${"figure".padEnd(labelW)}  ${"old".padStart(11)}  ${"new".padStart(11)}  ${"change".padStart(8)}`;
  const lines = [`old: ${oldName}`, `new: ${newName}`, "", header, "-".repeat(header.length)];
  for (const r of rows) {
    const change = r.changePercent === undefined ? "" : `${r.changePercent >= 0 ? "+" : ""}${r.changePercent.toFixed(1)}%`;
    const mark = r.verdict === "better" ? "  better" : r.verdict === "worse" ? "  WORSE" : r.verdict === "only old" || r.verdict === "only new" ? `  (${r.verdict})` : "";
    const label = r.label.length > labelW ? `${r.label.slice(0, labelW - 1)}…` : r.label;
    lines.push(`${label.padEnd(labelW)}  ${show(r.old, r.unit).padStart(11)}  ${show(r.new, r.unit).padStart(11)}  ${change.padStart(8)}${mark}`);
  }
  const worse = rows.filter((r) => r.verdict === "worse").length;
  const better = rows.filter((r) => r.verdict === "better").length;
  lines.push("", `${better} better, ${worse} worse (beyond ±5%), ${rows.length - better - worse} the same or unmatched`);
  return lines.join("\n") + "\n";
}

export function readResult(path: string): BenchResult {
  const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<BenchResult>;
  if (parsed.schema !== 1 || !Array.isArray(parsed.figures)) throw new Error(`${path} is not a stasis bench result (schema 1)`);
  return { concurrency: [], density: [], targets: [], failures: [], daemonErrors: [], ...parsed } as BenchResult;
}
