export { runBench, writeReport, REPO_ROOT, type BenchOptions } from "./run.js";
export { compareResults, flatten, readResult, renderComparison, type ComparisonRow, type Metric } from "./compare.js";
export { PROFILES, type Profile } from "./context.js";
export { SECTIONS, type BenchResult, type Section, type Figure, type ConcurrencyLevel, type DensityResult, type Target, type MachineInfo } from "./result.js";
export { quantile, summarize, type Stats } from "./stats.js";
