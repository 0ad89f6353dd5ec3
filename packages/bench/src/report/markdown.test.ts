import { describe, expect, it } from "vitest";
import { makeFigure } from "../figures.js";
import type { BenchResult } from "../result.js";
import { chartsFor } from "./charts.js";
import { isSlower, renderMarkdown } from "./markdown.js";
import { NOTES } from "./notes.js";
import { renderTable } from "./table.js";

const machine = { cpuModel: "AMD EPYC", cores: 2, memTotalMiB: 24105, kernel: "6.18", os: "Debian GNU/Linux 12 (bookworm)", runsc: "0.0~20240729.0", crun: "1.8.1", cgroups: "hybrid", node: "20.19.0", hostname: "h" };

const result: BenchResult = {
  schema: 1,
  mode: "quick",
  sections: ["create", "exec", "python", "paused", "hibernation", "files", "concurrency", "density"],
  command: "sudo npm run bench -- --quick",
  startedAt: "2026-11-23T17:00:00.000Z",
  finishedAt: "2026-11-23T17:02:30.000Z",
  wallSeconds: 150,
  machine,
  figures: [
    makeFigure({ id: "gvisor.create.first-command", section: "create", scenario: "create", label: "gvisor: create → first 'echo hi'", unit: "ms", samples: [300, 320, 340], baseline: { label: "raw 'runsc run'", samples: [200, 210, 220] } }),
    makeFigure({ id: "gvisor.exec.echo-api", section: "exec", scenario: "exec", label: "gvisor: 'echo hi' | API", unit: "ms", samples: [9, 10, 11], baseline: { label: "raw 'runsc exec echo hi'", samples: [38, 40, 42] } }),
  ],
  concurrency: [],
  density: [],
  targets: [{ what: "gVisor 'echo hi' against raw 'runsc exec'", target: "at least 5x faster", measured: "10 ms vs 40 ms: 4.0x faster", met: false }],
  failures: [],
  daemonErrors: ["sandbox create failed: boom"],
};

describe("renderMarkdown", () => {
  const charts = chartsFor(result);
  const md = renderMarkdown(result, charts, { chartsDir: "bench" });

  it("names the command, the machine and the date", () => {
    expect(md).toContain("`sudo npm run bench -- --quick`");
    expect(md).toContain("AMD EPYC, 2 cores, 23.5 GiB RAM; Debian GNU/Linux 12 (bookworm), kernel 6.18; hybrid cgroups");
    expect(md).toContain("runsc 0.0~20240729.0 (systrap), crun 1.8.1");
    expect(md).toContain("2026-11-23 17:00:00 UTC; wall time 2 min 30 s");
  });

  it("puts median, p95, p99, n, the baseline and the ratio in the table, escaping pipes", () => {
    expect(md).toContain("| gvisor: create → first 'echo hi' | 3 | 320 ms | 338 ms | 340 ms | raw 'runsc run' | 210 ms / 219 ms / 220 ms (n=3) | **1.52x slower** |");
    expect(md).toContain("gvisor: 'echo hi' \\| API");
    expect(md).toContain("4.0x faster");
  });

  it("embeds the charts and explains only where Stasis is slower", () => {
    expect(md).toContain("![Create to first command](bench/create.svg)");
    expect(md).toContain("![Commands in a running sandbox](bench/exec.svg)");
    expect(md).toContain(NOTES.create!.slower.slice(0, 60));
    expect(md).not.toContain(NOTES.exec!.slower.slice(0, 60));
  });

  it("shows targets and what the daemon reported", () => {
    expect(md).toContain("| gVisor 'echo hi' against raw 'runsc exec': at least 5x faster | 10 ms vs 40 ms: 4.0x faster | **not met** |");
    expect(md).toContain("`sandbox create failed: boom`");
  });
});

describe("isSlower and renderTable", () => {
  it("flags a figure only beyond the noise margin", () => {
    expect(isSlower(result.figures[0]!)).toBe(true);
    expect(isSlower(result.figures[1]!)).toBe(false);
  });

  it("prints a row per figure and the targets", () => {
    const text = renderTable(result);
    expect(text).toMatch(/gvisor: create → first 'echo hi'\s+3\s+320 ms\s+338 ms\s+340 ms\s+210 ms\s+1\.52x slower/);
    expect(text).toContain("NOT MET  gVisor 'echo hi' against raw 'runsc exec'");
  });
});
