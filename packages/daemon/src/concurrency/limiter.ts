/**
 * Runs at most `limit` tasks at once; the others wait their turn in arrival order. Used where work is
 * CPU-bound on the host (sandbox boots), so a burst queues instead of every task slowing to a timeout,
 * and where many small host operations would otherwise run one by one or all at once (a restart's stale
 * namespaces, the owners of a crun copy's files).
 */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Whether a new task would have to wait. */
  get full(): boolean {
    return this.active >= this.limit;
  }

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    // A finishing task hands its slot straight to the next waiter, so `active` only counts real slots.
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
