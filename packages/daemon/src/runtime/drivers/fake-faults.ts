/** A promise that never settles: what a call into a dead daemon's runtime looks like from inside it. */
export function never<T>(): Promise<T> {
  return new Promise<T>(() => {});
}

/** Which sandboxes a fault applies to: any (undefined), one id, or those a predicate picks. */
export type SandboxMatch = string | ((id: string) => boolean) | undefined;

interface Failure<Step> {
  step: Step;
  error: Error;
  id: SandboxMatch;
}

interface Crash<Step> {
  step: Step;
  after: boolean;
  id: SandboxMatch;
  hit: () => void;
}

/**
 * Faults injected into one daemon's view of the host (its driver and its disks share one): a step that
 * fails once, and a crash point where the daemon dies. Once a crash point is hit, every later call through
 * these faults never settles either, since the process that made them is gone; a new daemon gets new faults.
 */
export class StepFaults<Step extends string> {
  private readonly failures: Failure<Step>[] = [];
  private readonly crashes: Crash<Step>[] = [];
  /** Calls per step, counted when they start (a test can check that N requests shared one wake). */
  readonly calls = new Map<Step, number>();
  private dead = false;

  /** The next `step` (on a sandbox `id` matches, when given) throws `error` and does nothing. */
  failNext(step: Step, error: Error = new Error(`injected ${step} failure`), id?: SandboxMatch): void {
    this.failures.push({ step, error, id });
  }

  /**
   * The daemon dies at the next `step` (on sandbox `id`, when given): before it does anything, or, with
   * `after`, once its effect on the host is done. Resolves when the point is reached.
   */
  crashAt(step: Step, options: { after?: boolean; id?: SandboxMatch } = {}): Promise<void> {
    return new Promise((resolve) => this.crashes.push({ step, after: options.after ?? false, id: options.id, hit: resolve }));
  }

  get crashed(): boolean {
    return this.dead;
  }

  count(step: Step): number {
    return this.calls.get(step) ?? 0;
  }

  /** Runs `action` as `step` on sandbox `id`, unless a fault says otherwise. */
  async run<T>(step: Step, id: string, action: () => T | Promise<T>): Promise<T> {
    if (this.dead) return never();
    this.calls.set(step, this.count(step) + 1);
    this.takeFailure(step, id);
    const crash = this.take(this.crashes, step, id);
    if (crash && !crash.after) return this.die(crash);
    const result = await action();
    if (crash) return this.die(crash);
    return result;
  }

  /** For synchronous steps: failures only (a synchronous call cannot hang). */
  runSync<T>(step: Step, id: string, action: () => T): T {
    this.calls.set(step, this.count(step) + 1);
    this.takeFailure(step, id);
    return action();
  }

  private takeFailure(step: Step, id: string): void {
    const failure = this.take(this.failures, step, id);
    if (failure) throw failure.error;
  }

  private die(crash: Crash<Step>): Promise<never> {
    this.dead = true;
    crash.hit();
    return never();
  }

  private take<F extends { step: Step; id: SandboxMatch }>(list: F[], step: Step, id: string): F | undefined {
    const i = list.findIndex((f) => f.step === step && (f.id === undefined || (typeof f.id === "string" ? f.id === id : f.id(id))));
    return i === -1 ? undefined : list.splice(i, 1)[0];
  }
}
