import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { BenchDaemon } from "./daemon.js";
import type { Recorder } from "./figures.js";
import { RawRuntime, type RuntimeName } from "./raw/runtime.js";
import type { ConcurrencyLevel, DensityResult, Section } from "./result.js";

/** Sample counts and sizes: `quick` stays under 4 minutes on a 2-core machine (3 min 25 s with templates), `full` under 20. */
export interface Profile {
  mode: "quick" | "full";
  /** Cold creates per runtime (and raw cold runs beside them). */
  creates: number;
  /** Creates from the warm pool (each waits for the pool to refill). */
  poolCreates: number;
  /** Forks from a snapshot (fork to first command) and raw restores beside them. */
  snapshotForks: number;
  /** Creates from a snapshot template (create → first `curl`), each beside a raw cold run and a raw restore. */
  templateCreates: number;
  /** Creates from a template's warm pool (each waits for the pool to be full again). */
  templatePoolCreates: number;
  /** Creates fired at once against a snapshot template. */
  templateBurst: number;
  /** Round trips per kind of `echo hi`. */
  echoes: number;
  /** Python runs in a running sandbox. */
  pythonRuns: number;
  /** Python end to end: create, run, delete. */
  pythonEndToEnd: number;
  /** Warm `x + 1` runs in a code context (each beside a raw exec). */
  codeRuns: number;
  /** Creates → first code run, from the code-interpreter snapshot and from its warm pool, each. */
  codeCreates: number;
  /** Pause/wake samples per runtime, load (idle, busy) and kind of wake (echo, a process, the resume call). */
  pauses: number;
  /** How long a paused sandbox sleeps before it is woken (>= 1 s: users pause for seconds to days). */
  pauseMs: number;
  /** Hibernate/wake cycles per working set. */
  hibernateCycles: number;
  /** How long a hibernated sandbox sleeps before it is woken. */
  sleepMs: number;
  forks: number;
  workingSetsMiB: number[];
  files: { sizeMiB: number; n: number }[];
  concurrency: number[];
  /** Raw runtime beside the concurrency levels up to this many clients. */
  concurrencyBaselineMax: number;
  density: { gvisor: number; crun: number };
  /** How long idle CPU is measured over, per state. */
  densityWindowMs: number;
  /** How long sandboxes settle before each density measurement. */
  densitySettleMs: number;
}

export const PROFILES: Record<"quick" | "full", Profile> = {
  quick: {
    mode: "quick",
    creates: 5,
    poolCreates: 3,
    snapshotForks: 2,
    templateCreates: 5,
    templatePoolCreates: 5,
    templateBurst: 20,
    echoes: 20,
    pythonRuns: 5,
    pythonEndToEnd: 3,
    codeRuns: 20,
    codeCreates: 3,
    pauses: 5,
    pauseMs: 1_000,
    hibernateCycles: 2,
    sleepMs: 2_000,
    forks: 2,
    workingSetsMiB: [50],
    files: [
      { sizeMiB: 1, n: 10 },
      { sizeMiB: 100, n: 2 },
    ],
    concurrency: [1, 10, 50],
    concurrencyBaselineMax: 50,
    density: { gvisor: 5, crun: 5 },
    densityWindowMs: 3_000,
    densitySettleMs: 1_500,
  },
  full: {
    mode: "full",
    creates: 15,
    poolCreates: 10,
    snapshotForks: 5,
    templateCreates: 20,
    templatePoolCreates: 15,
    templateBurst: 50,
    echoes: 60,
    pythonRuns: 20,
    pythonEndToEnd: 8,
    codeRuns: 60,
    codeCreates: 10,
    pauses: 10,
    pauseMs: 3_000,
    hibernateCycles: 6,
    sleepMs: 3_000,
    forks: 4,
    workingSetsMiB: [50, 200],
    files: [
      { sizeMiB: 1, n: 30 },
      { sizeMiB: 100, n: 5 },
    ],
    concurrency: [1, 10, 50, 100, 200],
    concurrencyBaselineMax: 200,
    density: { gvisor: 40, crun: 40 },
    densityWindowMs: 10_000,
    densitySettleMs: 3_000,
  },
};

/** What every scenario gets: the daemon, the profile, the recorder, and the raw runtimes beside it. */
export class BenchContext {
  readonly concurrency: ConcurrencyLevel[] = [];
  readonly density: DensityResult[] = [];
  /**
   * Templates this run built in the shared templates folder and has not deleted yet: the cleanup removes
   * whatever of them is left once the daemons are stopped (an interrupted or failed section).
   */
  readonly templates = new Set<string>();
  private readonly raws = new Map<string, RawRuntime>();

  constructor(
    readonly daemon: BenchDaemon,
    readonly profile: Profile,
    readonly rec: Recorder,
    readonly log: (line: string) => void,
    /** Names this run's raw containers and cgroups. */
    readonly tag: string,
    readonly templatesDir: string,
    /** Scratch space for raw bundles, images and files (inside the bench's data directory). */
    readonly workDir: string,
    /** Starts another private daemon with more settings (cleaned up with the main one). */
    readonly startDaemon: (name: string, env: Record<string, string>) => Promise<BenchDaemon>,
    /** Deletes a daemon's sandboxes, stops it and removes everything it left. */
    readonly retireDaemon: (daemon: BenchDaemon) => Promise<void>,
    /** `section:part` picked alone; a section with none listed runs all of its parts. */
    readonly parts: ReadonlySet<string> = new Set(),
  ) {
    mkdirSync(workDir, { recursive: true });
  }

  /** Whether this run includes `part` of `section`. */
  wants(section: Section, part: string): boolean {
    const picked = [...this.parts].filter((p) => p.startsWith(`${section}:`));
    return picked.length === 0 || picked.includes(`${section}:${part}`);
  }

  get conn(): { apiUrl: string; apiKey: string } {
    return this.daemon.conn;
  }

  get rootfs(): string {
    return join(this.templatesDir, "base", "rootfs");
  }

  /** A raw runtime with its own state root under the bench's run directory; `purpose` separates roots. */
  raw(runtime: RuntimeName, purpose = "main", options: { network?: boolean } = {}): RawRuntime {
    const key = `${runtime}-${purpose}`;
    let raw = this.raws.get(key);
    if (!raw) {
      raw = new RawRuntime(runtime, { root: join(this.daemon.runDir, `raw-${key}`), workDir: join(this.workDir, `raw-${key}`), rootfs: this.rootfs, tag: this.tag, ...options });
      this.raws.set(key, raw);
    }
    return raw;
  }

  /** A container id for this run (unique, recognisable). */
  id(name: string): string {
    return `${this.tag}-${name}`;
  }

  /** Removes every raw container and cgroup of this run. */
  async sweepRaw(): Promise<void> {
    for (const raw of this.raws.values()) await raw.sweep().catch(() => undefined);
  }
}
