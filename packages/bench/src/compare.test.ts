import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compareResults, flatten, readResult, renderComparison } from "./compare.js";
import { makeFigure } from "./figures.js";
import type { BenchResult, ConcurrencyLevel } from "./result.js";
import { summarize } from "./stats.js";

const machine = { cpuModel: "cpu", cores: 2, memTotalMiB: 24000, kernel: "6.18", os: "Debian 12", runsc: "20240729", crun: "1.8.1", cgroups: "hybrid", node: "20", hostname: "h" };

function result(echo: number[], raw: number[], write: number[], errors: number): BenchResult {
  const latency = summarize([500, 600]);
  const level: ConcurrencyLevel = {
    runtime: "gvisor",
    clients: 10,
    stasis: { clients: 10, wallMs: 2000, throughput: 5, latency, errors, errorMessages: [], create: latency, health: { ...summarize([5]), failures: 0 } },
  };
  return {
    schema: 1,
    mode: "quick",
    sections: ["exec", "files", "concurrency"],
    command: "stasis bench --quick",
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: "2026-01-01T00:02:00.000Z",
    wallSeconds: 120,
    machine,
    figures: [
      makeFigure({ id: "gvisor.exec.echo-api", section: "exec", scenario: "exec", label: "gvisor: echo", unit: "ms", samples: echo, baseline: { label: "raw", samples: raw } }),
      makeFigure({ id: "gvisor.files.1.write", section: "files", scenario: "files", label: "gvisor: write 1 MiB", unit: "MiB/s", better: "higher", samples: write }),
    ],
    concurrency: [level],
    density: [],
    targets: [],
    failures: [],
    daemonErrors: [],
  };
}

describe("flatten", () => {
  it("names every figure's median, p95, p99, baseline and ratio, and the concurrency figures", () => {
    const ids = flatten(result([10], [40], [20], 0)).map((m) => m.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        "gvisor.exec.echo-api.median",
        "gvisor.exec.echo-api.p95",
        "gvisor.exec.echo-api.p99",
        "gvisor.exec.echo-api.baseline.median",
        "gvisor.exec.echo-api.ratio",
        "gvisor.files.1.write.median",
        "concurrency.gvisor.10.throughput",
        "concurrency.gvisor.10.errors",
        "concurrency.gvisor.10.healthz.median",
      ]),
    );
  });
});

describe("compareResults", () => {
  const old = result([10, 10, 10], [40, 40, 40], [20, 20], 0);
  const now = result([12, 12, 12], [40, 40, 40], [30, 30], 2);
  const rows = compareResults(old, now);
  const row = (id: string) => rows.find((r) => r.id === id)!;

  it("gives the change in percent and says whether it is better or worse", () => {
    expect(row("gvisor.exec.echo-api.median")).toMatchObject({ old: 10, new: 12, verdict: "worse" });
    expect(row("gvisor.exec.echo-api.median").changePercent).toBeCloseTo(20);
    expect(row("gvisor.exec.echo-api.baseline.median")).toMatchObject({ changePercent: 0, verdict: "same" });
    // Higher is better for throughput: +50% is an improvement.
    expect(row("gvisor.files.1.write.median")).toMatchObject({ verdict: "better" });
    expect(row("gvisor.files.1.write.median").changePercent).toBeCloseTo(50);
  });

  it("treats a rise from zero (errors) as worse without a percentage", () => {
    expect(row("concurrency.gvisor.10.errors")).toMatchObject({ old: 0, new: 2, changePercent: undefined, verdict: "worse" });
  });

  it("lists figures only one side has", () => {
    const fewer = { ...now, figures: now.figures.slice(0, 1) };
    const r = compareResults(old, fewer);
    expect(r.find((x) => x.id === "gvisor.files.1.write.median")?.verdict).toBe("only old");
    expect(compareResults(fewer, old).find((x) => x.id === "gvisor.files.1.write.median")?.verdict).toBe("only new");
  });

  it("renders one line per figure with old, new and the change", () => {
    const text = renderComparison(rows, "a.json", "b.json");
    expect(text).toContain("old: a.json");
    expect(text).toMatch(/gvisor: echo: median\s+10\.0 ms\s+12\.0 ms\s+\+20\.0%\s+WORSE/);
    expect(text).toMatch(/gvisor: write 1 MiB: median\s+20\.0 MiB\/s\s+30\.0 MiB\/s\s+\+50\.0%\s+better/);
    expect(text).toMatch(/better, \d+ worse/);
  });
});

describe("readResult", () => {
  it("reads a results.json and refuses anything else", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-compare-"));
    writeFileSync(join(dir, "ok.json"), JSON.stringify(result([1], [2], [3], 0)));
    writeFileSync(join(dir, "bad.json"), JSON.stringify({ hello: 1 }));
    expect(readResult(join(dir, "ok.json")).figures).toHaveLength(2);
    expect(() => readResult(join(dir, "bad.json"))).toThrow(/not a stasis bench result/);
  });
});
