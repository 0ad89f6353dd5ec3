import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { compareResults, readResult, renderComparison } from "./compare.js";
import { BenchContext, PROFILES } from "./context.js";
import { deleteAllSandboxes, removeDaemonLeftovers, startBenchDaemon, type BenchDaemon } from "./daemon.js";
import { Recorder } from "./figures.js";
import { errorText } from "./host.js";
import { describeMachine } from "./machine.js";
import { chartsFor } from "./report/charts.js";
import { renderMarkdown } from "./report/markdown.js";
import { renderTable } from "./report/table.js";
import { SECTIONS, type BenchResult, type Section } from "./result.js";
import { concurrencyScenario } from "./scenarios/concurrency.js";
import { createScenario, firstCreates } from "./scenarios/create.js";
import { densityScenario } from "./scenarios/density.js";
import { execScenario } from "./scenarios/exec.js";
import { ptyScenario } from "./scenarios/pty.js";
import { filesScenario } from "./scenarios/files.js";
import { networkScenario } from "./scenarios/network.js";
import { previewScenario } from "./scenarios/preview.js";
import { pythonScenario } from "./scenarios/python.js";
import { codeScenario } from "./scenarios/code.js";
import { pausedScenario } from "./scenarios/paused.js";
import { hibernationScenario } from "./scenarios/standby.js";
import { removeTemplateLeftovers, templatesScenario } from "./scenarios/templates.js";
import { evaluateTargets } from "./targets.js";

/** The repository this package sits in (packages/bench/dist/ → ../../..). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export interface BenchOptions {
  /** Fewer samples, one working set, 1/10/50 clients: under 4 minutes. */
  quick?: boolean;
  /** Which parts to run (default: all). */
  sections?: Section[];
  /** Parts of sections run alone, as `section:part` (a section without any here runs all of its parts). */
  parts?: string[];
  /** Where benchmarks.md goes; charts and results.json go to <outDir>/bench (default: <repo>/docs). */
  outDir?: string;
  /** Where a timestamped copy of the JSON goes (default: <repo>/bench/results). */
  resultsDir?: string;
  /** A results.json of an earlier run: printed old vs new after this run. */
  compare?: string;
  /** The stasis CLI's main.js, run as the bench's daemon (default: <repo>/packages/cli/dist/main.js). */
  cliPath?: string;
  /** Built templates (default: $STASIS_TEMPLATES_DIR or /var/lib/stasis/templates). */
  templatesDir?: string;
  /** The command line as the report should show it. */
  command?: string;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
  /** The table and comparison (default: stdout). */
  print?: (text: string) => void;
  /** Stop and clean up on SIGINT/SIGTERM, then exit 130 (default true). */
  handleSignals?: boolean;
}

const SCENARIOS: Record<Section, (ctx: BenchContext) => Promise<void>> = {
  create: createScenario,
  templates: templatesScenario,
  exec: execScenario,
  python: pythonScenario,
  code: codeScenario,
  paused: pausedScenario,
  hibernation: hibernationScenario,
  files: filesScenario,
  pty: ptyScenario,
  network: networkScenario,
  preview: previewScenario,
  concurrency: concurrencyScenario,
  density: densityScenario,
};

function rmdirIfEmpty(dir: string): void {
  try {
    if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    // someone else's run is using it
  }
}

/**
 * Runs the benchmark: its own daemon, every selected scenario beside the raw runtimes, then the report
 * (table on stdout, markdown, SVG charts, JSON). Cleans up its daemon, sandboxes and raw containers in
 * every case, including SIGINT. Resolves with the result; the exit code is 1 when a section failed.
 */
export async function runBench(options: BenchOptions = {}): Promise<{ result: BenchResult; exitCode: number }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const print = options.print ?? ((text: string) => process.stdout.write(text));
  if (process.getuid?.() !== 0) throw new Error("the benchmark needs root (runtimes, mounts, cgroups): run it with sudo");
  const profile = PROFILES[options.quick ? "quick" : "full"];
  const sections = options.sections?.length ? SECTIONS.filter((s) => options.sections!.includes(s)) : [...SECTIONS];
  const templatesDir = options.templatesDir ?? process.env.STASIS_TEMPLATES_DIR ?? "/var/lib/stasis/templates";
  if (!existsSync(join(templatesDir, "base", "rootfs"))) throw new Error(`no base template in ${templatesDir}: build it first (sudo stasis template build --builtin base, or scripts/setup.sh)`);
  const cliPath = options.cliPath ?? join(REPO_ROOT, "packages/cli/dist/main.js");
  const outDir = options.outDir ?? join(REPO_ROOT, "docs");
  const resultsDir = options.resultsDir ?? join(REPO_ROOT, "bench/results");
  const oldResult = options.compare ? readResult(options.compare) : undefined;

  const startedAt = new Date();
  const t0 = performance.now();
  const tag = `bench${process.pid}`;
  const dataDir = `/var/lib/stasis-bench/${tag}`;
  const runDir = `/run/stasis-bench/${tag}`;
  const rec = new Recorder(log);
  const failures: BenchResult["failures"] = [];
  let daemon: BenchDaemon | undefined;
  let ctx: BenchContext | undefined;
  /** Every daemon this run started (the main one first), each with its own directories. */
  const daemons: BenchDaemon[] = [];
  const started: { dataDir: string; runDir: string; daemon: BenchDaemon | undefined }[] = [];
  const startDaemon = async (name: string, env: Record<string, string>) => {
    const dirs = name === "main" ? { dataDir, runDir } : { dataDir: `${dataDir}-${name}`, runDir: `${runDir}-${name}` };
    // Registered before it listens, so that a daemon that fails half-way is still cleaned up.
    const pending: (typeof started)[number] = { ...dirs, daemon: undefined };
    started.push(pending);
    const logFile = join(resultsDir, `${startedAt.toISOString().replace(/[:.]/g, "-")}-daemon-${name}.log`);
    const d = await startBenchDaemon({ cliPath, ...dirs, templatesDir, maxSandboxes: 400, env, log, logFile });
    pending.daemon = d;
    daemons.push(d);
    return d;
  };

  /** What the cleanup found that should not have been there (reported with the daemon's errors). */
  const cleanupNotes: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    const secs = (performance.now() - t) / 1000;
    if (secs > 2) log(`  (${what}: ${secs.toFixed(1)} s)`);
  };
  /** Deletes a daemon's sandboxes, stops it and removes what it left; idempotent. */
  const retire = async (entry: (typeof started)[number]) => {
    if (entry.daemon?.running()) {
      await step("deleting sandboxes", async () => {
        const left = await deleteAllSandboxes(entry.daemon!.conn, 60_000).catch((err: unknown) => ({ deleted: 0, errors: [errorText(err)] }));
        for (const e of left.errors) log(`  could not delete ${e}`);
      });
    }
    await step("stopping a daemon", async () => entry.daemon?.stop());
    await step(`removing ${entry.dataDir}`, async () => {
      const problems = await removeDaemonLeftovers(entry.dataDir, entry.runDir).catch((err: unknown) => [errorText(err)]);
      for (const p of problems) log(`  cleanup: ${p}`);
      cleanupNotes.push(...problems.map((p) => `cleanup of ${entry.dataDir}: ${p}`));
    });
  };
  const retireDaemon = async (d: BenchDaemon) => {
    const entry = started.find((e) => e.daemon === d);
    if (!entry) return;
    started.splice(started.indexOf(entry), 1);
    await retire(entry);
  };
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      log("\ncleaning up: sandboxes, daemons, raw containers, mounts, directories");
      // Daemons first (so that nothing recreates what the sweep removes), then raw containers, then files.
      for (const entry of [...started].reverse()) {
        if (entry.daemon?.running()) await step("deleting sandboxes", async () => deleteAllSandboxes(entry.daemon!.conn, 60_000).catch(() => undefined));
        await step("stopping a daemon", async () => entry.daemon?.stop());
      }
      // Templates a section built in the shared templates folder and could not delete (interrupted, failed).
      for (const name of ctx?.templates ?? []) {
        await step(`removing template ${name}`, async () => {
          const removed = (() => {
            try {
              return removeTemplateLeftovers(templatesDir, name);
            } catch (err) {
              return [`could not remove template ${name} from ${templatesDir}: ${errorText(err)}`];
            }
          })();
          for (const line of removed) log(`  cleanup: ${line}`);
          cleanupNotes.push(...removed);
          ctx?.templates.delete(name);
        });
      }
      await step("removing raw containers", async () => ctx?.sweepRaw());
      for (const entry of [...started].reverse()) await retire(entry);
      rmdirIfEmpty("/var/lib/stasis-bench");
      rmdirIfEmpty("/run/stasis-bench");
    })());

  let interrupted = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted++;
    if (interrupted > 2) {
      log(`${signal} again: exiting without finishing the cleanup (leftovers: ${dataDir}, ${runDir})`);
      process.exit(130);
    }
    if (interrupted > 1) {
      log(`${signal}: still cleaning up, once more to exit at once`);
      return;
    }
    log(`\n${signal}: stopping the bench`);
    void cleanup().finally(() => process.exit(130));
  };
  if (options.handleSignals !== false) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }

  try {
    const machine = describeMachine();
    daemon = await startDaemon("main", {});
    ctx = new BenchContext(daemon, profile, rec, log, tag, templatesDir, join(dataDir, "bench-work"), startDaemon, retireDaemon, new Set(options.parts ?? []));
    const warmCtx = ctx;
    await step("first create of each runtime, not timed", () => firstCreates(warmCtx));
    log(`stasis bench (${profile.mode}): ${sections.map((s) => (options.parts?.some((p) => p.startsWith(`${s}:`)) ? options.parts.filter((p) => p.startsWith(`${s}:`)).join(", ") : s)).join(", ")}`);
    for (const section of sections) {
      if (interrupted) break;
      const ts = performance.now();
      try {
        await SCENARIOS[section](ctx);
      } catch (err) {
        if (interrupted) break;
        const error = err instanceof Error ? `${errorText(err)}${err.stack ? `\n${err.stack.split("\n").slice(1, 4).join("\n")}` : ""}` : errorText(err);
        failures.push({ section, error: errorText(err) });
        log(`\n!! section ${section} failed: ${error}`);
      } finally {
        if (!interrupted) {
          const left = await deleteAllSandboxes(daemon.conn).catch(() => ({ deleted: 0, errors: [] }));
          if (left.deleted > 0) log(`  (${left.deleted} sandboxes left by section ${section} deleted)`);
          await ctx.sweepRaw();
          log(`  [${section}: ${((performance.now() - ts) / 1000).toFixed(1)} s]`);
        }
      }
    }
    await cleanup();
    // Interrupted: the signal handler exits once the cleanup is done; no report from a partial run.
    if (interrupted) throw new Error("interrupted");
    const daemonErrors = [...daemons.flatMap((d) => d.errors), ...cleanupNotes];
    const wallSeconds = (performance.now() - t0) / 1000;
    const result: BenchResult = {
      schema: 1,
      mode: profile.mode,
      sections,
      command: options.command ?? `stasis bench${options.quick ? " --quick" : ""}`,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      wallSeconds,
      machine: await machine,
      figures: rec.figures,
      concurrency: ctx.concurrency,
      density: ctx.density,
      targets: evaluateTargets({ figures: rec.figures, concurrency: ctx.concurrency, mode: profile.mode, wallSeconds, complete: sections.length === SECTIONS.length }),
      failures,
      daemonErrors,
    };
    writeReport(result, outDir, resultsDir, log);
    print(`\n${renderTable(result)}`);
    if (oldResult && options.compare) print(`\n${renderComparison(compareResults(oldResult, result), options.compare, "this run")}`);
    log(`done in ${Math.floor(wallSeconds / 60)} min ${Math.round(wallSeconds % 60)} s`);
    return { result, exitCode: failures.length > 0 ? 1 : 0 };
  } finally {
    await cleanup();
    if (options.handleSignals !== false) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  }
}

/** Writes benchmarks.md, the charts and results.json under `outDir`, and a timestamped JSON copy. */
export function writeReport(result: BenchResult, outDir: string, resultsDir: string, log: (line: string) => void): void {
  const chartsDir = join(outDir, "bench");
  mkdirSync(chartsDir, { recursive: true });
  const charts = chartsFor(result);
  for (const chart of charts) writeFileSync(join(chartsDir, chart.file), chart.svg);
  const json = `${JSON.stringify(result, null, 1)}\n`;
  writeFileSync(join(chartsDir, "results.json"), json);
  writeFileSync(join(outDir, "benchmarks.md"), renderMarkdown(result, charts, { chartsDir: relative(outDir, chartsDir) || "." }));
  mkdirSync(resultsDir, { recursive: true });
  const stamp = result.startedAt.replace(/[:.]/g, "-");
  writeFileSync(join(resultsDir, `${stamp}-${result.mode}.json`), json);
  log(`wrote ${join(outDir, "benchmarks.md")}, ${charts.length} charts and results.json in ${chartsDir}, a copy in ${resultsDir}`);
}
