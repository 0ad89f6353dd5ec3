import type { BenchResult, Figure } from "../result.js";
import { NOTES } from "./notes.js";
import { concurrencyChart, densityChart, stripChart } from "./svg.js";

export interface Chart {
  /** File name under the charts folder, e.g. "exec.svg". */
  file: string;
  /** Scenario the chart belongs to (where the report embeds it). */
  scenario: string;
  title: string;
  svg: string;
}

/** Strip charts per scenario and unit, plus the concurrency and density charts, for a result. */
export function chartsFor(result: BenchResult): Chart[] {
  const charts: Chart[] = [];
  const byKey = new Map<string, Figure[]>();
  for (const f of result.figures) {
    if (f.scenario === "density") continue; // its own chart below
    if (f.unit === "count") continue; // a count (errors) is a number in the table, not a distribution
    const key = `${f.scenario}|${f.unit}`;
    byKey.set(key, [...(byKey.get(key) ?? []), f]);
  }
  const machine = `${result.machine.cores} cores, ${result.machine.cpuModel}, kernel ${result.machine.kernel}; ${result.mode} run of ${result.startedAt.slice(0, 16).replace("T", " ")} UTC`;
  for (const [key, figures] of byKey) {
    const [scenario = "", unit = ""] = key.split("|");
    const title = NOTES[scenario]?.title ?? scenario;
    const suffix = unit === "ms" ? "" : unit === "MiB" ? "-size" : `-${unit.replace(/[^a-z]/gi, "").toLowerCase()}`;
    charts.push({
      file: `${scenario}${suffix}.svg`,
      scenario,
      title: unit === "ms" ? title : `${title} (${unit})`,
      svg: stripChart({
        title: unit === "ms" ? `${title}: latency` : `${title}: ${unit}`,
        subtitle: machine,
        unit,
        better: figures[0]?.better ?? "lower",
        groups: figures.map((f) => ({
          title: f.label,
          rows: [
            { label: "Stasis", kind: "stasis" as const, samples: f.stasis.samples, stats: f.stasis.stats },
            ...(f.baseline ? [{ label: f.baseline.label, kind: "baseline" as const, samples: f.baseline.samples, stats: f.baseline.stats }] : []),
          ],
        })),
      }),
    });
  }
  if (result.concurrency.length > 0) charts.push({ file: "concurrency.svg", scenario: "concurrency", title: "Concurrency", svg: concurrencyChart(result.concurrency, { subtitle: machine }) });
  if (result.density.length > 0) charts.push({ file: "density.svg", scenario: "density", title: "Density", svg: densityChart(result.density) });
  return charts;
}
