/**
 * The benchmark's sections and their parts, known here so that parsing `stasis bench --sections` and the
 * help need no @stasis/bench: that package is optional, loaded only when `stasis bench` runs.
 * bench-sections.test.ts checks these against the bench's own.
 */
export const BENCH_SECTIONS = ["create", "templates", "exec", "python", "code", "paused", "hibernation", "files", "pty", "network", "preview", "concurrency", "density"] as const;
export type BenchSection = (typeof BENCH_SECTIONS)[number];

/** Parts of a section that `--sections section:part` runs alone. */
export const BENCH_SECTION_PARTS: Partial<Record<BenchSection, readonly string[]>> = {
  create: ["cold", "warm-pool", "snapshot"],
  paused: ["idle", "busy"],
};

export function isBenchSectionPart(section: BenchSection, part: string): boolean {
  return BENCH_SECTION_PARTS[section]?.includes(part) ?? false;
}
