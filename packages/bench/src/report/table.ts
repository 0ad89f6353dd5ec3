import { formatValue } from "../format.js";
import type { BenchResult } from "../result.js";
import { ratioText } from "../stats.js";

function grid(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** The plain-text summary printed at the end of a run. */
export function renderTable(result: BenchResult): string {
  const rows = result.figures.map((f) => {
    const s = f.stasis.stats;
    const v = (x: number) => formatValue(x, f.unit);
    return [f.label, String(s.n), v(s.median), v(s.p95), v(s.p99), f.baseline ? v(f.baseline.stats.median) : "-", f.ratio === undefined ? "" : ratioText(f.ratio)];
  });
  const parts = [grid(["measurement", "n", "median", "p95", "p99", "baseline median", "vs baseline"], rows)];
  if (result.concurrency.length > 0) {
    const ms = (x: number) => formatValue(x, "ms");
    parts.push(
      grid(
        ["clients", "per s", "p50", "p99", "errors", "healthz p50", "healthz p95", "raw per s", "raw p99"],
        result.concurrency.map((l) => [String(l.clients), l.stasis.throughput.toFixed(2), ms(l.stasis.latency.median), ms(l.stasis.latency.p99), String(l.stasis.errors), ms(l.stasis.health.median), ms(l.stasis.health.p95), l.baseline ? l.baseline.throughput.toFixed(2) : "-", l.baseline ? ms(l.baseline.latency.p99) : "-"]),
      ),
    );
  }
  if (result.density.length > 0) {
    const rows2: string[][] = [];
    for (const d of result.density) {
      for (const [state, s] of [["running", d.running], ["paused", d.paused], ["hibernated", d.hibernated]] as const) {
        if (s) rows2.push([`${d.runtime} ${state}`, String(d.n), s.hostMiBPerSandbox.toFixed(1), s.memAvailableDropMiBPerSandbox.toFixed(1), s.cgroupMiBPerSandbox.toFixed(1), `${s.idleCpuPercentPerSandbox.toFixed(2)}%`, s.diskMiBPerSandbox === undefined ? "-" : s.diskMiBPerSandbox.toFixed(1), `~${s.projected ?? "∞"}`]);
      }
    }
    parts.push(grid(["density", "n", "host MiB each", "MemAvail drop", "cgroup MiB", "idle CPU", "disk MiB", "projected"], rows2));
  }
  if (result.targets.length > 0) parts.push(result.targets.map((t) => `${t.met ? "met    " : "NOT MET"}  ${t.what}: ${t.target}; measured ${t.measured}`).join("\n"));
  if (result.failures.length > 0) parts.push(result.failures.map((f) => `FAILED section ${f.section}: ${f.error}`).join("\n"));
  return parts.join("\n\n") + "\n";
}
