/** Whole milliseconds since the last call, or since it was made: the phases of a boot, a wake, a hibernation
 * or a fork, for their log lines. */
export function stopwatch(): () => number {
  let mark = performance.now();
  return () => {
    const now = performance.now();
    const ms = Math.round(now - mark);
    mark = now;
    return ms;
  };
}
