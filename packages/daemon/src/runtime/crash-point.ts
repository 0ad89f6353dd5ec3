/**
 * A test hook for the crash suite (tests/e2e/crash.test.ts): `STASIS_CRASH_AT=<point>[,<point>...]` makes
 * the daemon SIGKILL itself the first time it reaches one of the named points, exactly as `kill -9` would,
 * so each step of each transition can be crashed on purpose instead of by timing. Unset in production.
 */
const points = new Set((process.env.STASIS_CRASH_AT ?? "").split(",").map((p) => p.trim()).filter(Boolean));

/** The points the daemon knows (a typo in STASIS_CRASH_AT would otherwise crash nothing, silently). */
export const CRASH_POINTS = [
  "create.launched",
  "pause.frozen",
  "resume.thawed",
  "hibernate.writing",
  "hibernate.written",
  "wake.restored",
  "network.attached",
  "fork.copying",
  "fork.restored",
  "upload.partial",
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

for (const p of points) {
  if (!(CRASH_POINTS as readonly string[]).includes(p)) throw new Error(`STASIS_CRASH_AT: unknown crash point ${p} (known: ${CRASH_POINTS.join(", ")})`);
}

export function crashPoint(point: CrashPoint): void {
  if (!points.has(point)) return;
  process.stderr.write(`STASIS_CRASH_AT: the daemon kills itself at ${point}\n`);
  process.kill(process.pid, "SIGKILL");
}
