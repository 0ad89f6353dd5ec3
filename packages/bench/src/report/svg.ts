// Hand-written SVG charts (no chart dependency): strip plots of latency distributions, Stasis beside its
// baseline, and the concurrency curves. Pure functions from figures to SVG text.
import type { ConcurrencyLevel, DensityResult } from "../result.js";
import { quantile, type Stats } from "../stats.js";

export const COLORS = { stasis: "#2563eb", baseline: "#ea580c", grid: "#e5e7eb", axis: "#374151", text: "#111827", muted: "#6b7280", bad: "#dc2626" };
const FONT = "font-family=\"Helvetica, Arial, sans-serif\"";

export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A number short enough for an axis label. */
export function tickLabel(v: number): string {
  if (!Number.isFinite(v)) return "-";
  if (v === 0) return "0";
  const abs = Math.abs(v);
  if (abs >= 1000) return `${+(v / 1000).toFixed(abs >= 10000 ? 0 : 1)}k`;
  if (abs >= 10) return v.toFixed(0);
  if (abs >= 1) return +v.toFixed(1) + "";
  return +v.toPrecision(2) + "";
}

const r1 = (v: number) => Math.round(v * 10) / 10;

export interface Scale {
  log: boolean;
  min: number;
  max: number;
  ticks: number[];
  /** Position 0..1 of a value along the axis. */
  at(v: number): number;
}

/** Nice round step for about `count` intervals over `span`. */
function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

/**
 * An axis for values in [lo, hi]: logarithmic when they span more than `logRatio` (20x), so that a 0.3 ms thaw
 * and a 20 ms command both stay readable; otherwise linear from zero.
 */
export function makeScale(lo: number, hi: number, options: { logRatio?: number; forceLinear?: boolean } = {}): Scale {
  const finiteHi = Number.isFinite(hi) && hi > 0 ? hi : 1;
  const positiveLo = Number.isFinite(lo) && lo > 0 ? lo : finiteHi / 10;
  if (!options.forceLinear && finiteHi / positiveLo > (options.logRatio ?? 20)) {
    // Bounds and ticks on the 1-2-5 sequence, so that the axis hugs the data.
    const steps = (from: number, to: number) => {
      const out: number[] = [];
      for (let d = Math.floor(Math.log10(from)) - 1; d <= Math.ceil(Math.log10(to)) + 1; d++) for (const m of [1, 2, 5]) out.push(+(m * 10 ** d).toPrecision(3));
      return out;
    };
    const seq = steps(positiveLo, finiteHi);
    const min = [...seq].reverse().find((v) => v <= positiveLo) ?? positiveLo;
    const max = seq.find((v) => v >= finiteHi) ?? finiteHi;
    const inRange = seq.filter((v) => v >= min && v <= max);
    const decades = Math.log10(max / min);
    const ticks = decades > 3.5 ? inRange.filter((v) => Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9) : inRange;
    return { log: true, min, max, ticks, at: (v) => Math.log10(Math.max(v, min) / min) / Math.log10(max / min) };
  }
  const step = niceStep(finiteHi, 5);
  const max = Math.ceil((finiteHi * 1.05) / step) * step;
  const ticks: number[] = [];
  for (let t = 0; t <= max + step / 2; t += step) ticks.push(+t.toPrecision(12));
  return { log: false, min: 0, max, ticks, at: (v) => Math.min(1, Math.max(0, v / max)) };
}

/** Deterministic jitter in [-1, 1] for sample i of row r (the same chart twice is the same file). */
function jitter(r: number, i: number): number {
  const x = Math.sin(r * 127.1 + i * 311.7) * 43758.5453;
  return (x - Math.floor(x)) * 2 - 1;
}

export interface StripRow {
  label: string;
  kind: "stasis" | "baseline";
  samples: number[];
  stats: Stats;
}

export interface StripGroup {
  /** The figure's name, shown above its rows. */
  title: string;
  rows: StripRow[];
}

export interface StripChartInput {
  title: string;
  subtitle?: string;
  /** Axis unit, e.g. "ms" or "MiB/s". */
  unit: string;
  /** "lower" or "higher" is better: said on the axis. */
  better?: "lower" | "higher";
  groups: StripGroup[];
  width?: number;
}

/**
 * Horizontal strip plots: one row per series (Stasis in blue, its baseline in orange below it), every sample
 * a dot, the p25-p75 box, the median as a bar, p95 and p99 as ticks, the median's value at the right.
 */
export function stripChart(input: StripChartInput): string {
  const width = input.width ?? 980;
  const rowH = 24;
  const groupTitleH = 18;
  const groupGap = 12;
  const labelW = 330;
  const valueW = 96;
  const x0 = labelW + 14;
  const x1 = width - valueW - 10;
  const top = 92;
  const all = input.groups.flatMap((g) => g.rows.flatMap((r) => r.samples)).filter((v) => Number.isFinite(v));
  const scale = all.length ? makeScale(Math.min(...all), Math.max(...all)) : makeScale(0, 1, { forceLinear: true });
  const px = (v: number) => r1(x0 + scale.at(v) * (x1 - x0));
  const body: string[] = [];
  let y = top;
  input.groups.forEach((group, gi) => {
    body.push(`<text x="${x0}" y="${y + 13}" font-size="12.5" font-weight="bold" fill="${COLORS.text}">${escapeXml(group.title)}</text>`);
    y += groupTitleH;
    group.rows.forEach((row, ri) => {
      const color = row.kind === "stasis" ? COLORS.stasis : COLORS.baseline;
      const cy = y + rowH / 2;
      const sorted = row.samples.filter(Number.isFinite).sort((a, b) => a - b);
      if (ri % 2 === 0) body.push(`<rect x="0" y="${y}" width="${width}" height="${rowH}" fill="#f9fafb"/>`);
      body.push(`<text x="${labelW}" y="${cy + 4}" font-size="11.5" text-anchor="end" fill="${color}">${escapeXml(truncate(row.label, 52))}</text>`);
      if (sorted.length > 0) {
        const q1 = quantile(sorted, 0.25);
        const q3 = quantile(sorted, 0.75);
        body.push(`<line x1="${px(sorted[0]!)}" y1="${cy}" x2="${px(sorted[sorted.length - 1]!)}" y2="${cy}" stroke="${color}" stroke-width="1" opacity="0.6"/>`);
        body.push(`<rect x="${px(q1)}" y="${cy - 7}" width="${Math.max(1, r1(px(q3) - px(q1)))}" height="14" fill="${color}" opacity="0.18" stroke="${color}" stroke-width="0.8"/>`);
        sorted.forEach((v, i) => body.push(`<circle cx="${px(v)}" cy="${r1(cy + jitter(gi * 10 + ri, i) * 5)}" r="2.4" fill="${color}" opacity="0.55"/>`));
        body.push(`<line x1="${px(row.stats.median)}" y1="${cy - 9}" x2="${px(row.stats.median)}" y2="${cy + 9}" stroke="${color}" stroke-width="3"/>`);
        for (const [p, dash] of [
          [row.stats.p95, "3,2"],
          [row.stats.p99, "1,2"],
        ] as const) {
          body.push(`<line x1="${px(p)}" y1="${cy - 9}" x2="${px(p)}" y2="${cy + 9}" stroke="${COLORS.axis}" stroke-width="1.4" stroke-dasharray="${dash}"/>`);
        }
      }
      body.push(`<text x="${x1 + 10}" y="${cy + 4}" font-size="11.5" fill="${color}">${escapeXml(`${tickLabel(row.stats.median)} ${input.unit}`)}</text>`);
      y += rowH;
    });
    y += groupGap;
  });
  const plotBottom = y;
  const height = plotBottom + 48;
  const grid = scale.ticks
    .map((t) => `<line x1="${px(t)}" y1="${top - 4}" x2="${px(t)}" y2="${plotBottom}" stroke="${COLORS.grid}" stroke-width="1"/><text x="${px(t)}" y="${plotBottom + 16}" font-size="11" text-anchor="middle" fill="${COLORS.axis}">${tickLabel(t)}</text>`)
    .join("");
  const axisTitle = `${input.unit}${scale.log ? ", log scale" : ""}${input.better ? ` (${input.better} is better)` : ""}`;
  const legend = legendRow(x0, 66, [
    { color: COLORS.stasis, text: "Stasis" },
    { color: COLORS.baseline, text: "baseline (raw runtime / host)" },
  ]);
  return svgDocument(width, height, [
    `<text x="16" y="26" font-size="17" font-weight="bold" fill="${COLORS.text}">${escapeXml(input.title)}</text>`,
    input.subtitle ? `<text x="16" y="44" font-size="12" fill="${COLORS.muted}">${escapeXml(input.subtitle)}</text>` : "",
    legend,
    `<text x="${width - 16}" y="44" font-size="11" text-anchor="end" fill="${COLORS.muted}">dots: samples · box: p25–p75 · bar: median · dashed: p95 · dotted: p99</text>`,
    grid,
    ...body,
    `<line x1="${x0}" y1="${plotBottom}" x2="${x1}" y2="${plotBottom}" stroke="${COLORS.axis}" stroke-width="1"/>`,
    `<text x="${r1((x0 + x1) / 2)}" y="${plotBottom + 36}" font-size="12" text-anchor="middle" fill="${COLORS.axis}">${escapeXml(axisTitle)}</text>`,
    `<text x="${x1 + 10}" y="${top - 8}" font-size="11" fill="${COLORS.muted}">median</text>`,
  ]);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function legendRow(x: number, y: number, items: { color: string; text: string; dashed?: boolean }[]): string {
  let cx = x;
  const parts: string[] = [];
  for (const item of items) {
    parts.push(`<line x1="${cx}" y1="${y - 4}" x2="${cx + 18}" y2="${y - 4}" stroke="${item.color}" stroke-width="3"${item.dashed ? ' stroke-dasharray="5,3"' : ""}/>`);
    parts.push(`<text x="${cx + 24}" y="${y}" font-size="12" fill="${COLORS.text}">${escapeXml(item.text)}</text>`);
    cx += 24 + item.text.length * 6.6 + 22;
  }
  return parts.join("");
}

function svgDocument(width: number, height: number, parts: string[]): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${r1(height)}" viewBox="0 0 ${width} ${r1(height)}" ${FONT}>`,
    `<rect x="0" y="0" width="${width}" height="${r1(height)}" fill="#ffffff"/>`,
    ...parts.filter(Boolean),
    `</svg>`,
    "",
  ].join("\n");
}

interface LinePanelSeries {
  label: string;
  color: string;
  dashed?: boolean;
  points: { x: number; y: number; note?: string }[];
}

/** One panel of the concurrency chart: lines over a log x axis of client counts. */
function linePanel(opts: { x: number; y: number; w: number; h: number; title: string; yUnit: string; xs: number[]; series: LinePanelSeries[]; targetY?: { value: number; label: string } }): string {
  const { x, y, w, h } = opts;
  const ys = opts.series.flatMap((s) => s.points.map((p) => p.y)).concat(opts.targetY ? [opts.targetY.value] : []).filter(Number.isFinite);
  const yScale = makeScale(0, Math.max(...ys, 0.001), { forceLinear: true });
  const xMin = Math.min(...opts.xs);
  const xMax = Math.max(...opts.xs);
  const xAt = (v: number) => r1(x + (xMax === xMin ? 0.5 : Math.log10(v / xMin) / Math.log10(xMax / xMin)) * w);
  const yAt = (v: number) => r1(y + h - yScale.at(v) * h);
  const parts: string[] = [`<text x="${x}" y="${y - 12}" font-size="13" font-weight="bold" fill="${COLORS.text}">${escapeXml(opts.title)}</text>`];
  for (const t of yScale.ticks) {
    parts.push(`<line x1="${x}" y1="${yAt(t)}" x2="${x + w}" y2="${yAt(t)}" stroke="${COLORS.grid}"/>`);
    parts.push(`<text x="${x - 6}" y="${yAt(t) + 4}" font-size="11" text-anchor="end" fill="${COLORS.axis}">${tickLabel(t)}</text>`);
  }
  for (const c of opts.xs) {
    parts.push(`<line x1="${xAt(c)}" y1="${y + h}" x2="${xAt(c)}" y2="${y + h + 4}" stroke="${COLORS.axis}"/>`);
    parts.push(`<text x="${xAt(c)}" y="${y + h + 17}" font-size="11" text-anchor="middle" fill="${COLORS.axis}">${c}</text>`);
  }
  parts.push(`<line x1="${x}" y1="${y + h}" x2="${x + w}" y2="${y + h}" stroke="${COLORS.axis}"/><line x1="${x}" y1="${y}" x2="${x}" y2="${y + h}" stroke="${COLORS.axis}"/>`);
  parts.push(`<text x="${x - 44}" y="${r1(y + h / 2)}" font-size="11.5" text-anchor="middle" fill="${COLORS.axis}" transform="rotate(-90 ${x - 44} ${r1(y + h / 2)})">${escapeXml(opts.yUnit)}</text>`);
  if (opts.targetY) {
    parts.push(`<line x1="${x}" y1="${yAt(opts.targetY.value)}" x2="${x + w}" y2="${yAt(opts.targetY.value)}" stroke="${COLORS.bad}" stroke-width="1.2" stroke-dasharray="6,4"/>`);
    parts.push(`<text x="${x + 6}" y="${yAt(opts.targetY.value) - 5}" font-size="11" fill="${COLORS.bad}">${escapeXml(opts.targetY.label)}</text>`);
  }
  for (const s of opts.series) {
    const pts = s.points.filter((p) => Number.isFinite(p.y));
    if (pts.length === 0) continue;
    parts.push(`<polyline points="${pts.map((p) => `${xAt(p.x)},${yAt(p.y)}`).join(" ")}" fill="none" stroke="${s.color}" stroke-width="2.2"${s.dashed ? ' stroke-dasharray="6,4"' : ""}/>`);
    for (const p of pts) {
      parts.push(`<circle cx="${xAt(p.x)}" cy="${yAt(p.y)}" r="3.5" fill="${s.color}"/>`);
      // Dashed series label below their points, solid ones above, so that close values stay legible.
      parts.push(`<text x="${xAt(p.x) + 6}" y="${s.dashed ? yAt(p.y) + 15 : yAt(p.y) - 6}" font-size="10.5" fill="${s.color}">${escapeXml(p.note ?? tickLabel(p.y))}</text>`);
    }
  }
  return parts.join("\n");
}

/** Throughput, p99 latency and the daemon's health-check latency against the number of clients. */
export function concurrencyChart(levels: ConcurrencyLevel[], options: { width?: number; subtitle?: string } = {}): string {
  const width = options.width ?? 980;
  const xs = levels.map((l) => l.clients);
  const panelW = width - 140;
  const panelH = 190;
  const x = 90;
  const stasis = (label: string, value: (l: ConcurrencyLevel) => number, note?: (l: ConcurrencyLevel) => string | undefined): LinePanelSeries => ({
    label,
    color: COLORS.stasis,
    points: levels.map((l) => ({ x: l.clients, y: value(l), ...(note?.(l) ? { note: note(l)! } : {}) })),
  });
  const base = (value: (l: NonNullable<ConcurrencyLevel["baseline"]>) => number): LinePanelSeries => ({
    label: "raw",
    color: COLORS.baseline,
    dashed: true,
    points: levels.filter((l) => l.baseline).map((l) => ({ x: l.clients, y: value(l.baseline!) })),
  });
  const errorNote = (l: ConcurrencyLevel) => (l.stasis.errors > 0 ? `${tickLabel(l.stasis.latency.p99 / 1000)} (${l.stasis.errors} errors)` : undefined);
  const panels = [
    linePanel({ x, y: 100, w: panelW, h: panelH, title: "Throughput: sandboxes created, used and deleted per second", yUnit: "per second", xs, series: [stasis("Stasis", (l) => l.stasis.throughput), base((b) => b.throughput)] }),
    linePanel({ x, y: 100 + panelH + 70, w: panelW, h: panelH, title: "p99 latency per client (create + echo hi + delete)", yUnit: "seconds", xs, series: [stasis("Stasis", (l) => l.stasis.latency.p99 / 1000, errorNote), base((b) => b.latency.p99 / 1000)] }),
    linePanel({
      x,
      y: 100 + 2 * (panelH + 70),
      w: panelW,
      h: panelH,
      title: "Daemon responsiveness during the run: GET /healthz every ~100 ms (solid: median, dashed: p95)",
      yUnit: "ms",
      xs,
      series: [
        stasis("median", (l) => l.stasis.health.median),
        { label: "p95", color: "#7c3aed", dashed: true, points: levels.map((l) => ({ x: l.clients, y: l.stasis.health.p95 })) },
      ],
      targetY: { value: 50, label: "target: median < 50 ms" },
    }),
  ];
  const height = 100 + 3 * (panelH + 70) + 10;
  const errors = levels.reduce((a, l) => a + l.stasis.errors, 0);
  return svgDocument(width, height, [
    `<text x="16" y="26" font-size="17" font-weight="bold" fill="${COLORS.text}">Concurrency: N clients at once, each creates a sandbox, runs a command, deletes it</text>`,
    `<text x="16" y="44" font-size="12" fill="${errors > 0 ? COLORS.bad : COLORS.muted}">${escapeXml(options.subtitle ?? "")}${errors > 0 ? `${options.subtitle ? " · " : ""}${errors} client errors in total` : `${options.subtitle ? " · " : ""}zero client errors`}</text>`,
    legendRow(x, 66, [
      { color: COLORS.stasis, text: "Stasis (gVisor)" },
      { color: COLORS.baseline, text: "raw 'runsc run' (cold)", dashed: true },
      { color: "#7c3aed", text: "/healthz p95", dashed: true },
    ]),
    `<text x="${width - 16}" y="66" font-size="11" text-anchor="end" fill="${COLORS.muted}">x: clients at once (log scale)</text>`,
    ...panels,
  ]);
}

/** Host memory per idle sandbox, running and paused (and hibernated: none), per runtime, with the projected capacity. */
export function densityChart(results: DensityResult[], options: { width?: number } = {}): string {
  const width = options.width ?? 980;
  const rows: { label: string; value: number; cgroup: number; note: string }[] = [];
  for (const d of results) {
    const accounted = (s: DensityResult["running"]) => s.cgroupMiBPerSandbox + s.outsideMiBPerSandbox;
    rows.push({ label: `${d.runtime}: running`, value: d.running.hostMiBPerSandbox, cgroup: accounted(d.running), note: `~${d.running.projected ?? "∞"} projected (${d.running.limitedBy.startsWith("idle CPU") ? "idle CPU" : "memory"})` });
    rows.push({ label: `${d.runtime}: paused`, value: d.paused.hostMiBPerSandbox, cgroup: accounted(d.paused), note: `~${d.paused.projected ?? "∞"} projected (memory)` });
    if (d.hibernated) rows.push({ label: `${d.runtime}: hibernated`, value: Math.max(0, d.hibernated.hostMiBPerSandbox), cgroup: 0, note: `${tickLabel(d.hibernated.diskMiBPerSandbox ?? NaN)} MiB disk each` });
  }
  const labelW = 170;
  const x0 = labelW + 14;
  const x1 = width - 230;
  const top = 80;
  const rowH = 34;
  const scale = makeScale(0, Math.max(...rows.flatMap((r) => [r.value, r.cgroup]).filter(Number.isFinite), 1), { forceLinear: true });
  const px = (v: number) => r1(x0 + scale.at(Math.max(0, v)) * (x1 - x0));
  const parts: string[] = [];
  rows.forEach((row, i) => {
    const y = top + i * rowH;
    parts.push(`<text x="${labelW}" y="${y + 17}" font-size="12" text-anchor="end" fill="${COLORS.text}">${escapeXml(row.label)}</text>`);
    if (Number.isFinite(row.value)) parts.push(`<rect x="${x0}" y="${y + 4}" width="${Math.max(1, r1(px(row.value) - x0))}" height="12" fill="${COLORS.stasis}"/>`);
    if (Number.isFinite(row.cgroup)) parts.push(`<rect x="${x0}" y="${y + 18}" width="${Math.max(1, r1(px(row.cgroup) - x0))}" height="8" fill="${COLORS.stasis}" opacity="0.35"/>`);
    parts.push(`<text x="${x1 + 10}" y="${y + 15}" font-size="11.5" fill="${COLORS.text}">${escapeXml(`${tickLabel(row.value)} MiB host · ${row.note}`)}</text>`);
  });
  const bottom = top + rows.length * rowH + 4;
  const grid = scale.ticks.map((t) => `<line x1="${px(t)}" y1="${top - 4}" x2="${px(t)}" y2="${bottom}" stroke="${COLORS.grid}"/><text x="${px(t)}" y="${bottom + 16}" font-size="11" text-anchor="middle" fill="${COLORS.axis}">${tickLabel(t)}</text>`);
  return svgDocument(width, bottom + 46, [
    `<text x="16" y="26" font-size="17" font-weight="bold" fill="${COLORS.text}">Density: host memory per idle sandbox</text>`,
    `<text x="16" y="44" font-size="12" fill="${COLORS.muted}">Idle sandboxes; the host cost is the larger of the MemAvailable drop and the accounted memory. Capacity is projected, not filled.</text>`,
    legendRow(x0, 64, [
      { color: COLORS.stasis, text: "host MiB per sandbox (used for the projection)" },
      { color: "#9db5f2", text: "accounted: memory cgroup + runtime outside it" },
    ]),
    ...grid,
    ...parts,
    `<line x1="${x0}" y1="${bottom}" x2="${x1}" y2="${bottom}" stroke="${COLORS.axis}"/>`,
    `<text x="${r1((x0 + x1) / 2)}" y="${bottom + 36}" font-size="12" text-anchor="middle" fill="${COLORS.axis}">MiB per sandbox</text>`,
  ]);
}
