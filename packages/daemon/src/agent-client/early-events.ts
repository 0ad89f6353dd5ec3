import type { ProcessEvent } from "./agent-connection.js";

/** How long events for a pid nobody listens to yet are kept (the exec reply can trail its first output). */
const EARLY_EVENT_TTL_MS = 5_000;
/** Bound on early output kept across all pids: the agent is untrusted and could invent pids. */
const EARLY_BYTES_MAX = 8 * 1024 * 1024;
/** Bound on pids with early events (an exit is kept even past the byte bound, so pids are bounded too). */
const EARLY_PIDS_MAX = 1024;

/** Why an event was not kept, and how many bytes of junk it counts as. */
export type Refused = { reason: string; bytes: number };

/**
 * Process events that came before anyone listened to their pid (an exec's reply can trail its first
 * output), kept for a few seconds within bounds, then replayed to the first listener.
 */
export class EarlyEvents {
  private readonly byPid = new Map<number, { at: number; events: ProcessEvent[] }>();
  private bytes = 0;
  private sweptAt = 0;

  /** Keeps `event`, or says why it is junk instead. */
  keep(event: ProcessEvent, now = Date.now()): Refused | null {
    // Swept at most once a second: a stream of events must not cost a pass over the map each.
    if (now - this.sweptAt > 1000) {
      this.sweptAt = now;
      for (const [pid, e] of this.byPid) if (now - e.at > EARLY_EVENT_TTL_MS) this.take(pid);
    }
    const size = event.ev === "out" ? event.data.length : 0;
    // Output beyond the bound is dropped (counted as a message, not by its bytes, which were legitimate
    // output); an exit is kept, so no waiter is left hanging, unless the agent invents more pids than any
    // sandbox starts in a few seconds.
    if (event.ev === "out" && this.bytes + size > EARLY_BYTES_MAX) return { reason: `output for pid ${event.pid}, which nobody listens to`, bytes: 0 };
    if (!this.byPid.has(event.pid) && this.byPid.size >= EARLY_PIDS_MAX) return { reason: `an event for yet another unknown pid (${event.pid})`, bytes: size };
    const entry = this.byPid.get(event.pid) ?? { at: now, events: [] };
    entry.events.push(event);
    this.bytes += size;
    this.byPid.set(event.pid, entry);
    return null;
  }

  /** The events kept for `pid` (no longer kept). */
  take(pid: number): ProcessEvent[] {
    const entry = this.byPid.get(pid);
    if (!entry) return [];
    this.byPid.delete(pid);
    for (const e of entry.events) if (e.ev === "out") this.bytes -= e.data.length;
    return entry.events;
  }
}
