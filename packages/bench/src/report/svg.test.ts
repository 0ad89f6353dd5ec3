import { describe, expect, it } from "vitest";
import type { ConcurrencyLevel, DensityResult } from "../result.js";
import { summarize } from "../stats.js";
import { concurrencyChart, densityChart, escapeXml, makeScale, stripChart, tickLabel } from "./svg.js";

/** A small XML checker: every tag closes in order, attributes are quoted, no stray '<' or '&'. */
function assertWellFormed(svg: string): void {
  const body = svg.replace(/^<\?xml[^>]*\?>\s*/, "");
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (const m of body.matchAll(tag)) {
    const between = body.slice(last, m.index);
    expect(between, `text before <${m[2]}>`).not.toMatch(/[<>]/);
    expect(between).not.toMatch(/&(?!amp;|lt;|gt;|quot;|#\d+;)/);
    last = m.index! + m[0].length;
    if (m[1]) expect(stack.pop(), `closing </${m[2]}>`).toBe(m[2]);
    else if (!m[4]) stack.push(m[2]!);
  }
  expect(body.slice(last).trim()).toBe("");
  expect(stack).toEqual([]);
  expect(svg).not.toMatch(/NaN|undefined|Infinity/);
}

const row = (label: string, kind: "stasis" | "baseline", samples: number[]) => ({ label, kind, samples, stats: summarize(samples) });

describe("stripChart", () => {
  const svg = stripChart({
    title: "Commands <in a sandbox> & more",
    subtitle: "2 cores",
    unit: "ms",
    better: "lower",
    groups: [
      { title: "gvisor: 'echo hi' (SDK)", rows: [row("Stasis", "stasis", [8, 9, 10, 12, 30]), row("raw 'runsc exec echo hi'", "baseline", [35, 38, 40, 60])] },
      { title: "resume", rows: [row("Stasis", "stasis", [3.5, 4, 4.2]), row("raw freezer thaw", "baseline", [0.3, 0.45, 0.5])] },
    ],
  });

  it("is well-formed SVG with its title escaped", () => {
    expect(svg.startsWith("<?xml")).toBe(true);
    assertWellFormed(svg);
    expect(svg).toContain("Commands &lt;in a sandbox&gt; &amp; more");
  });

  it("draws every sample and names every series with its median", () => {
    expect(svg.match(/<circle /g)).toHaveLength(5 + 4 + 3 + 3);
    for (const text of ["gvisor: 'echo hi' (SDK)", "raw 'runsc exec echo hi'", "raw freezer thaw", "resume", "9 ms", "39 ms"]) expect(svg).toContain(escapeXml(text));
  });

  it("switches to a log axis when the values span more than 20x", () => {
    expect(svg).toContain("ms, log scale (lower is better)");
  });

  it("survives a series without samples", () => {
    const empty = stripChart({ title: "t", unit: "ms", groups: [{ title: "g", rows: [row("Stasis", "stasis", [])] }] });
    assertWellFormed(empty);
  });
});

describe("makeScale", () => {
  it("is linear from zero with round ticks for a narrow range", () => {
    const s = makeScale(180, 420);
    expect(s.log).toBe(false);
    expect(s.ticks[0]).toBe(0);
    expect(s.ticks.at(-1)).toBeGreaterThanOrEqual(420);
    expect(s.at(0)).toBe(0);
    expect(s.at(s.max)).toBe(1);
  });

  it("is logarithmic on the 1-2-5 sequence for a wide range", () => {
    const s = makeScale(0.3, 2500);
    expect(s.log).toBe(true);
    expect(s.min).toBe(0.2);
    expect(s.max).toBe(5000);
    expect(s.ticks).toContain(1);
    expect(s.at(s.min)).toBe(0);
    expect(s.at(s.max)).toBeCloseTo(1);
  });

  it("labels ticks briefly", () => {
    expect([tickLabel(0), tickLabel(0.25), tickLabel(2), tickLabel(50), tickLabel(2000), tickLabel(15000)]).toEqual(["0", "0.25", "2", "50", "2k", "15k"]);
  });
});

const level = (clients: number, errors = 0): ConcurrencyLevel => {
  const latency = summarize([clients * 100, clients * 120]);
  return {
    runtime: "gvisor",
    clients,
    stasis: { clients, wallMs: 1000, throughput: clients / 2, latency, errors, errorMessages: errors ? [{ message: "boom", count: errors }] : [], create: latency, health: { ...summarize([4, 5, 9]), failures: 0 } },
    baseline: { clients, wallMs: 500, throughput: clients, latency, errors: 0, errorMessages: [], label: "raw" },
  };
};

describe("concurrencyChart", () => {
  it("is well-formed and plots throughput, p99 and health for every level", () => {
    const svg = concurrencyChart([level(1), level(10), level(50)], { subtitle: "2 cores" });
    assertWellFormed(svg);
    expect(svg.match(/<polyline /g)).toHaveLength(6);
    for (const text of ["Throughput", "p99 latency", "/healthz", "target: median &lt; 50 ms", "zero client errors", ">50<"]) expect(svg).toContain(text);
  });

  it("says when clients failed", () => {
    const svg = concurrencyChart([level(1), level(200, 3)]);
    assertWellFormed(svg);
    expect(svg).toContain("3 client errors in total");
    expect(svg).toContain("(3 errors)");
  });
});

describe("densityChart", () => {
  it("is well-formed with a bar per runtime and state", () => {
    const state = { hostMiBPerSandbox: 20, memAvailableDropMiBPerSandbox: 18, cgroupMiBPerSandbox: 16, outsideMiBPerSandbox: 3, idleCpuPercentPerSandbox: 3, projected: 60, limitedBy: "idle CPU (2 cores / 3% each)" };
    const d: DensityResult = { runtime: "gvisor", n: 6, memAvailableMiB: 20000, cores: 2, windowMs: 4000, running: state, paused: { ...state, idleCpuPercentPerSandbox: 0, projected: 1000 }, hibernated: { ...state, hostMiBPerSandbox: 0, cgroupMiBPerSandbox: 0, diskMiBPerSandbox: 5, projected: 9000 }, daemonDefaultCap: 200 };
    const svg = densityChart([d]);
    assertWellFormed(svg);
    for (const text of ["gvisor: running", "gvisor: paused", "gvisor: hibernated", "~60 projected (idle CPU)", "5 MiB disk each"]) expect(svg).toContain(text);
  });
});
