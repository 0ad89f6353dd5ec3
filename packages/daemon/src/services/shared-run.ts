/**
 * One run at a time: callers while one runs share its result, and the next call after it settles runs
 * anew (GET /v1/doctor: a console reloaded in a loop starts no second set of host probes).
 */
export function sharedRun<T>(run: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () =>
    (running ??= run().finally(() => {
      running = null;
    }));
}
