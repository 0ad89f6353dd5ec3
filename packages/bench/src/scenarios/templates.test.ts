import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeFigure } from "../figures.js";
import { chartsFor } from "../report/charts.js";
import type { BenchResult } from "../result.js";
import { evaluateTargets } from "../targets.js";
import { removeTemplateLeftovers } from "./templates.js";

describe("removeTemplateLeftovers", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const version = (name: string, v: number, layers: string[], status = "ready") => {
    mkdirSync(join(dir, name, `v${v}`), { recursive: true });
    writeFileSync(join(dir, name, `v${v}`, "template.json"), JSON.stringify({ name, version: v, status, layers }));
  };
  const layer = (key: string) => {
    mkdirSync(join(dir, ".layers", key, "diff"), { recursive: true });
    writeFileSync(join(dir, ".layers", key, "layer.json"), "{}");
  };

  it("removes the template's folder and the layers only it used, never its base layer or another template's", () => {
    dir = mkdtempSync(join(tmpdir(), "bench-templates-"));
    for (const key of ["aaa0", "bbb1", "ccc2", "ddd3", "eee4"]) layer(key);
    version("bench1-server", 1, ["aaa0", "bbb1", "ccc2"]);
    version("bench1-server", 2, ["aaa0", "bbb1", "ddd3"], "building");
    version("web", 1, ["aaa0", "eee4", "ccc2"]);
    mkdirSync(join(dir, "base", "rootfs"), { recursive: true });

    const removed = removeTemplateLeftovers(dir, "bench1-server");

    expect(removed).toEqual([`template bench1-server was left in ${dir} (removed, with 2 layer(s) only it used)`]);
    expect(existsSync(join(dir, "bench1-server"))).toBe(false);
    expect(existsSync(join(dir, ".layers", "bbb1"))).toBe(false);
    expect(existsSync(join(dir, ".layers", "ddd3"))).toBe(false);
    for (const kept of ["aaa0", "ccc2", "eee4"]) expect(existsSync(join(dir, ".layers", kept))).toBe(true);
    expect(existsSync(join(dir, "web", "v1", "template.json"))).toBe(true);
    expect(existsSync(join(dir, "base", "rootfs"))).toBe(true);
  });

  it("does nothing when the template is gone", () => {
    dir = mkdtempSync(join(tmpdir(), "bench-templates-"));
    expect(removeTemplateLeftovers(dir, "bench1-server")).toEqual([]);
  });
});

describe("template targets and charts", () => {
  const fig = (id: string, samples: number[], unit: "ms" | "s" | "count" = "ms") => makeFigure({ id, section: "templates", scenario: "templates", label: id, unit, samples });

  it("checks the snapshot, warm-pool and burst targets", () => {
    const figures = [
      fig("gvisor.templates.snapshot.first-command", [240, 260, 270]),
      fig("gvisor.templates.warm-pool.first-command", [20, 25, 28]),
      fig("gvisor.templates.burst.create", [1000, 2000, 3000]),
      fig("gvisor.templates.burst.wall", [3.2], "s"),
      fig("gvisor.templates.burst.errors", [1], "count"),
    ];
    const targets = evaluateTargets({ figures, concurrency: [], mode: "quick", wallSeconds: 60, complete: false });
    const byKey = Object.fromEntries(targets.map((t) => [t.key, t]));
    expect(byKey["template-snapshot-250ms"]).toMatchObject({ met: false, measured: "260 ms" });
    expect(byKey["template-pool-30ms"]).toMatchObject({ met: true, measured: "25.0 ms" });
    expect(byKey["template-burst-errors"]).toMatchObject({ met: false, what: "burst: 20 creates at once from a snapshot template (50 in the full run)" });
    expect(byKey["template-burst-errors"]?.measured).toBe("1 error; all replied in 3.20 s, per create p50 2000 ms, p99 2980 ms");
  });

  it("draws no chart of a count", () => {
    const result = { figures: [fig("gvisor.templates.burst.errors", [0], "count"), fig("gvisor.templates.snapshot.create", [300])], concurrency: [], density: [], machine: { cores: 2, cpuModel: "cpu", kernel: "6" }, mode: "quick", startedAt: "2026-01-01T00:00:00.000Z" } as unknown as BenchResult;
    expect(chartsFor(result).map((c) => c.file)).toEqual(["templates.svg"]);
  });
});
