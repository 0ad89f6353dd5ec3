import { formatValue } from "./format.js";
import type { Figure, Section, Unit } from "./result.js";
import { ratioText, slowdown, summarize } from "./stats.js";

export interface FigureInput {
  id: string;
  section: Section;
  scenario: string;
  label: string;
  unit: Unit;
  better?: "lower" | "higher";
  samples: number[];
  baseline?: { label: string; samples: number[] };
}

export function makeFigure(input: FigureInput): Figure {
  const better = input.better ?? "lower";
  const stasis = { label: input.label, stats: summarize(input.samples, better), samples: input.samples };
  const figure: Figure = { id: input.id, section: input.section, scenario: input.scenario, label: input.label, unit: input.unit, better, stasis };
  if (input.baseline) {
    figure.baseline = { label: input.baseline.label, stats: summarize(input.baseline.samples, better), samples: input.baseline.samples };
    figure.ratio = slowdown(stasis.stats.median, figure.baseline.stats.median, better);
  }
  return figure;
}

/** Collects figures as scenarios produce them, and reports each on the progress stream. */
export class Recorder {
  readonly figures: Figure[] = [];

  constructor(private readonly log: (line: string) => void) {}

  record(input: FigureInput): Figure {
    const figure = makeFigure(input);
    const existing = this.figures.findIndex((f) => f.id === figure.id);
    if (existing >= 0) this.figures.splice(existing, 1, figure);
    else this.figures.push(figure);
    const s = figure.stasis.stats;
    const line = `  ${figure.label.padEnd(64)} median ${formatValue(s.median, figure.unit).padStart(10)}  p95 ${formatValue(s.p95, figure.unit).padStart(10)}  p99 ${formatValue(s.p99, figure.unit).padStart(10)}  n=${s.n}`;
    const base = figure.baseline ? `\n  ${`  vs ${figure.baseline.label}`.padEnd(64)} median ${formatValue(figure.baseline.stats.median, figure.unit).padStart(10)}  → ${ratioText(figure.ratio ?? NaN)}` : "";
    this.log(line + base);
    return figure;
  }

  /** Samples recorded so far under an id (for targets computed from several figures). */
  get(id: string): Figure | undefined {
    return this.figures.find((f) => f.id === id);
  }
}
