import type { Stats } from "./stats.js";

/** The parts of the benchmark; `--sections` picks a subset. */
export const SECTIONS = ["create", "templates", "exec", "python", "code", "paused", "hibernation", "files", "pty", "network", "preview", "concurrency", "density"] as const;
export type Section = (typeof SECTIONS)[number];

/** Parts of a section that `--sections section:part` runs alone (a section named bare runs all of its parts). */
export const SECTION_PARTS: Partial<Record<Section, readonly string[]>> = {
  create: ["cold", "warm-pool", "snapshot"],
  paused: ["idle", "busy"],
};

/** Whether `part` names a part of `section` (for `--sections section:part`). */
export function isSectionPart(section: Section, part: string): boolean {
  return SECTION_PARTS[section]?.includes(part) ?? false;
}

export type Unit = "ms" | "s" | "MiB" | "MiB/s" | "%" | "count" | "/s";

export interface Series {
  label: string;
  stats: Stats;
  samples: number[];
}

/** One measured quantity: Stasis's samples, and the raw runtime's beside it when there is a baseline. */
export interface Figure {
  /** Stable key across runs (what --compare matches on), e.g. "gvisor.exec.echo-api". */
  id: string;
  section: Section;
  /** Groups figures for the charts and the explanatory notes, e.g. "exec". */
  scenario: string;
  label: string;
  unit: Unit;
  better: "lower" | "higher";
  stasis: Series;
  baseline?: Series;
  /** Stasis's median against the baseline's: > 1 slower, < 1 faster (inverted for higher-is-better units). */
  ratio?: number;
}

export interface ConcurrencyRun {
  clients: number;
  /** Wall time from the first request to the last client done. */
  wallMs: number;
  /** Completed clients per second. */
  throughput: number;
  /** Per-client time: create + command + delete (or the raw run), successful clients only. */
  latency: Stats;
  errors: number;
  /** Distinct error messages with how often each occurred. */
  errorMessages: { message: string; count: number }[];
}

export interface ConcurrencyLevel {
  runtime: "gvisor" | "crun";
  clients: number;
  stasis: ConcurrencyRun & {
    /** The create call alone, per client. */
    create: Stats;
    /** GET /healthz polled every ~100 ms during the run. */
    health: Stats & { failures: number };
  };
  baseline?: ConcurrencyRun & { label: string };
}

export interface DensityState {
  /** Host memory each sandbox costs, as projected from: the larger of the MemAvailable drop and cgroup + outside. */
  hostMiBPerSandbox: number;
  /** (MemAvailable before - MemAvailable now) / n: noisy on a shared machine. */
  memAvailableDropMiBPerSandbox: number;
  /** Mean of the sandboxes' memory cgroups. */
  cgroupMiBPerSandbox: number;
  /** Anonymous memory of the sandbox's runtime processes outside its cgroup (gVisor: the `runsc run` parent). */
  outsideMiBPerSandbox: number;
  /** Mean CPU per sandbox over the idle window, in % of one core (cgroup accounting). */
  idleCpuPercentPerSandbox: number;
  /** Host disk per sandbox (hibernated: checkpoint image plus written disk blocks). */
  diskMiBPerSandbox?: number;
  /** Projected sandboxes this host holds in this state (see `limitedBy`); null when unbounded by the measure. */
  projected: number | null;
  limitedBy: string;
}

export interface DensityResult {
  runtime: "gvisor" | "crun";
  /** Sandboxes actually created for the measurement. */
  n: number;
  memAvailableMiB: number;
  cores: number;
  windowMs: number;
  running: DensityState;
  paused: DensityState;
  hibernated?: DensityState;
  /** The daemon's own cap (STASIS_MAX_SANDBOXES of a default install; hibernated sandboxes do not count). */
  daemonDefaultCap: number;
}

export interface Target {
  /** Names the static explanation shown when the target is not met (report/notes.ts). */
  key?: string;
  what: string;
  target: string;
  measured: string;
  met: boolean;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memTotalMiB: number;
  kernel: string;
  os: string;
  runsc: string;
  crun: string;
  cgroups: string;
  node: string;
  hostname: string;
}

export interface BenchResult {
  schema: 1;
  mode: "quick" | "full";
  sections: Section[];
  command: string;
  startedAt: string;
  finishedAt: string;
  wallSeconds: number;
  machine: MachineInfo;
  figures: Figure[];
  concurrency: ConcurrencyLevel[];
  density: DensityResult[];
  targets: Target[];
  /** A section that could not finish, with the error as it was thrown. */
  failures: { section: Section; error: string }[];
  /** Error-level lines the bench daemon logged (its own account of what went wrong). */
  daemonErrors: string[];
}
