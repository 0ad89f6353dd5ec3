import { performance } from "node:perf_hooks";

/**
 * Milliseconds each step of the daemon's start took, for the "listening" log line: a slow restart
 * (many sandboxes to reconcile, a loaded host) then says which step it waited on.
 */
export class StartupPhases {
  private last = performance.now();
  private readonly phases: Record<string, number> = {};

  /** Ends the phase running since the previous mark (or since construction) under this name. */
  mark(name: string): void {
    const now = performance.now();
    this.phases[name] = Math.round(now - this.last);
    this.last = now;
  }

  /** The phases so far, and the process's whole age (module loading included) in ms. */
  summary(): { processMs: number; phasesMs: Record<string, number> } {
    return { processMs: Math.round(process.uptime() * 1000), phasesMs: { ...this.phases } };
  }
}
