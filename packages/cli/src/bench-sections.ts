/**
 * The benchmark's sections, known here so that parsing `stasis bench --sections` and the help need no
 * @stasis/bench: that package is optional, loaded only when `stasis bench` runs. bench-sections.test.ts
 * checks this list against the bench's own.
 */
export const BENCH_SECTIONS = ["create", "templates", "exec", "python", "paused", "hibernation", "files", "concurrency", "density"] as const;
export type BenchSection = (typeof BENCH_SECTIONS)[number];
