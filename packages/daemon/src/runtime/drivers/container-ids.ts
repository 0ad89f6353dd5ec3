import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SandboxRef } from "../driver.js";

interface Incarnations {
  /** The runtime's container id of the sandbox's current incarnation. */
  current: string;
  /** Earlier incarnations (checkpointed) whose runtime state may not be deleted yet. */
  stale: string[];
  next: number;
}

const FILE = "containers.json";
const ID = /^[\w][\w.-]{0,127}$/;

/**
 * The runtime's container ids of one sandbox, kept in its runtime folder. A restore starts a new
 * incarnation under a fresh id, so it never waits for the runtime to forget the checkpointed one (a
 * `runsc delete` of a restored container takes over a second); the old ids are deleted in the background
 * and, should the daemon stop first, by the next destroy.
 */
export class ContainerIds {
  constructor(private readonly ref: SandboxRef) {}

  private read(): Incarnations {
    try {
      const parsed = JSON.parse(readFileSync(join(this.ref.dir, FILE), "utf8")) as Partial<Incarnations>;
      const current = typeof parsed.current === "string" && ID.test(parsed.current) ? parsed.current : this.ref.id;
      const stale = Array.isArray(parsed.stale) ? parsed.stale.filter((s): s is string => typeof s === "string" && ID.test(s)) : [];
      return { current, stale, next: typeof parsed.next === "number" && Number.isInteger(parsed.next) ? parsed.next : 1 };
    } catch {
      // A sandbox booted by this daemon (or one from before incarnations) runs under its own id.
      return { current: this.ref.id, stale: [], next: 1 };
    }
  }

  private write(value: Incarnations): void {
    const path = join(this.ref.dir, FILE);
    writeFileSync(`${path}.tmp`, JSON.stringify(value), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  current(): string {
    return this.read().current;
  }

  /** Every id the runtime may still know for this sandbox, current first. */
  all(): string[] {
    const { current, stale } = this.read();
    return [current, ...stale.filter((s) => s !== current)];
  }

  /** A fresh boot runs under the sandbox's own id. */
  reset(): void {
    this.write({ current: this.ref.id, stale: [], next: 1 });
  }

  /** Starts a new incarnation; the previous id is kept as stale until `forgotten`. */
  startIncarnation(): string {
    const state = this.read();
    const id = `${this.ref.id}-${state.next}`;
    // Without a file the current id is the sandbox's own: a container an older daemon may have left listed.
    const stale = state.current === id ? state.stale : [...state.stale, state.current];
    this.write({ current: id, stale, next: state.next + 1 });
    return id;
  }

  forgotten(id: string): void {
    const state = this.read();
    if (!state.stale.includes(id)) return;
    this.write({ ...state, stale: state.stale.filter((s) => s !== id) });
  }
}
