import { describe, expect, it } from "vitest";
import { quantile, ratioText, slowdown, summarize } from "./stats.js";

describe("quantile", () => {
  it("interpolates between ranks like numpy's default", () => {
    const s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(quantile(s, 0.5)).toBe(5.5);
    expect(quantile(s, 0)).toBe(1);
    expect(quantile(s, 1)).toBe(10);
    expect(quantile(s, 0.95)).toBeCloseTo(9.55);
    expect(quantile(s, 0.99)).toBeCloseTo(9.91);
  });

  it("handles one sample and none", () => {
    expect(quantile([42], 0.99)).toBe(42);
    expect(quantile([], 0.5)).toBeNaN();
  });
});

describe("summarize", () => {
  it("sorts, ignores non-finite samples and reports n, min, max, mean, median, p95, p99", () => {
    const stats = summarize([30, 10, NaN, 20, Infinity, 40]);
    expect(stats).toMatchObject({ n: 4, min: 10, max: 40, mean: 25, median: 25 });
    expect(stats.p95).toBeCloseTo(38.5);
    expect(stats.p99).toBeCloseTo(39.7);
  });

  it("takes the tail on the bad side for throughputs", () => {
    const s = Array.from({ length: 101 }, (_, i) => i);
    expect(summarize(s).p95).toBeCloseTo(95);
    expect(summarize(s, "higher").p95).toBeCloseTo(5);
    expect(summarize(s, "higher").p99).toBeCloseTo(1);
    expect(summarize(s, "higher").median).toBe(50);
  });

  it("gives NaN stats for no samples", () => {
    expect(summarize([])).toMatchObject({ n: 0, median: NaN, p99: NaN });
  });
});

describe("slowdown and ratioText", () => {
  it("is > 1 when Stasis is slower, in either direction of goodness", () => {
    expect(slowdown(300, 200, "lower")).toBe(1.5);
    expect(slowdown(10, 40, "lower")).toBe(0.25);
    expect(slowdown(20, 100, "higher")).toBe(5);
    expect(slowdown(0, 100, "lower")).toBeNaN();
  });

  it("words a ratio", () => {
    expect(ratioText(1.5)).toBe("1.50x slower");
    expect(ratioText(0.25)).toBe("4.0x faster");
    expect(ratioText(12.3)).toBe("12x slower");
    expect(ratioText(1.001)).toBe("same");
    expect(ratioText(NaN)).toBe("-");
  });
});
