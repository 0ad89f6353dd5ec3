/** Summary of a sample: every percentile is linearly interpolated between the closest ranks (numpy's default). */
export interface Stats {
  n: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  p95: number;
  p99: number;
}

/**
 * The p-quantile (0..1) of ascending-sorted values, interpolating between neighbours. With few samples the
 * high percentiles approach the maximum (n = 20: p99 is 0.81 of the way from the 19th to the 20th value).
 */
export function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  if (p <= 0) return sorted[0]!;
  if (p >= 1) return sorted[sorted.length - 1]!;
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const a = sorted[lo]!;
  const b = sorted[Math.min(lo + 1, sorted.length - 1)]!;
  return a + (h - lo) * (b - a);
}

/**
 * Stats of the finite values among `samples` (NaN everywhere when there are none). p95 and p99 are the
 * tail on the bad side: for latencies (lower is better) the 95th and 99th percentiles; for throughputs
 * (higher is better) the 5th and 1st, the value that 95% and 99% of the samples did better than.
 */
export function summarize(samples: readonly number[], better: "lower" | "higher" = "lower"): Stats {
  const s = samples.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return { n: 0, min: NaN, max: NaN, mean: NaN, median: NaN, p95: NaN, p99: NaN };
  const tail = (p: number) => quantile(s, better === "lower" ? p : 1 - p);
  return {
    n: s.length,
    min: s[0]!,
    max: s[s.length - 1]!,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    median: quantile(s, 0.5),
    p95: tail(0.95),
    p99: tail(0.99),
  };
}

/**
 * How much slower Stasis is than its baseline, from the medians: > 1 slower, < 1 faster. For figures where
 * higher is better (throughput) the ratio is inverted so that > 1 still means slower.
 */
export function slowdown(stasis: number, baseline: number, better: "lower" | "higher"): number {
  if (!Number.isFinite(stasis) || !Number.isFinite(baseline) || stasis <= 0 || baseline <= 0) return NaN;
  return better === "lower" ? stasis / baseline : baseline / stasis;
}

/** "1.32x slower" / "3.1x faster" / "same" for a slowdown ratio. */
export function ratioText(ratio: number): string {
  if (!Number.isFinite(ratio)) return "-";
  if (ratio >= 0.995 && ratio <= 1.005) return "same";
  const digits = (x: number) => (x >= 10 ? x.toFixed(0) : x.toFixed(x >= 3 ? 1 : 2));
  return ratio > 1 ? `${digits(ratio)}x slower` : `${digits(1 / ratio)}x faster`;
}
