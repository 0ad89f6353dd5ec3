import type { Sandbox } from "@stasis/protocol";
import type { SandboxService } from "../services/sandbox-service.js";

/** One reading of a sandbox's use, as E2B's metrics list it. */
export interface MetricSample {
  at: number;
  cpuCount: number;
  cpuUsedPct: number;
  memUsed: number;
  memTotal: number;
  diskUsed: number;
  diskTotal: number;
  /** Network bytes over the sandbox's life at this reading (null without a network): the console's charts. */
  netSent: number | null;
  netReceived: number | null;
}

/** E2B samples every 5 s. */
export const SAMPLE_INTERVAL_MS = 5_000;
/** An hour of samples per sandbox (E2B's window and the console's charts): ~70 KiB each, dropped with the sandbox. */
export const SAMPLES_KEPT = 720;

interface Track {
  /** Oldest first; at most SAMPLES_KEPT. */
  samples: MetricSample[];
  /** The CPU counter at the last reading, for the CPU use between two readings. */
  cpu: { at: number; usec: number } | null;
}

/**
 * A short, bounded history of each running sandbox's use, so that `getMetrics({ start, end })` answers with
 * the samples in its window as E2B does, and the console charts the last hour (GET .../metrics/history). Kept in memory only: a restarted daemon starts a new history.
 */
export class E2bMetricsHistory {
  private readonly tracks = new Map<string, Track>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly sandboxes: SandboxService) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      try {
        this.sampleAll(Date.now());
      } catch {
        // A reading that fails (the store closing at shutdown) is skipped; the next one tries again.
      }
    }, SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Samples every running sandbox; forgets the sandboxes that are gone. */
  sampleAll(now: number): void {
    const seen = new Set<string>();
    for (let cursor: string | undefined; ; ) {
      const page = this.sandboxes.list({ limit: 200, ...(cursor ? { cursor } : {}) });
      for (const s of page.sandboxes) {
        seen.add(s.id);
        if (s.state === "running") this.record(s, now);
      }
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    for (const id of this.tracks.keys()) if (!seen.has(id)) this.tracks.delete(id);
  }

  /** The samples taken in [start, end] (unix seconds, both included; either may be absent). */
  window(id: string, start?: number, end?: number): MetricSample[] {
    const samples = this.tracks.get(id)?.samples ?? [];
    return samples.filter((s) => {
      const second = Math.floor(s.at / 1000);
      return (start === undefined || second >= start) && (end === undefined || second <= end);
    });
  }

  /** A reading taken now and not kept: for a sandbox with no history yet. */
  current(s: Sandbox, now: number): MetricSample {
    return this.read(s, now, this.tracks.get(s.id)?.cpu ?? null);
  }

  private record(s: Sandbox, now: number): void {
    let track = this.tracks.get(s.id);
    if (!track) {
      track = { samples: [], cpu: null };
      this.tracks.set(s.id, track);
    }
    const sample = this.read(s, now, track.cpu, track);
    track.samples.push(sample);
    if (track.samples.length > SAMPLES_KEPT) track.samples.splice(0, track.samples.length - SAMPLES_KEPT);
  }

  private read(s: Sandbox, now: number, previous: Track["cpu"], track?: Track): MetricSample {
    const u = this.sandboxes.usage(s.id);
    let cpuUsedPct = 0;
    if (u.cpuUsageUsec !== null) {
      const cores = Math.max(u.cpuCount, 0.01);
      // Use since the last reading; without one (or after a restore reset the counter), over the sandbox's life.
      const since = previous && u.cpuUsageUsec >= previous.usec && now > previous.at ? previous : { at: Date.parse(s.createdAt), usec: 0 };
      const seconds = Math.max(0.001, (now - since.at) / 1000);
      cpuUsedPct = Math.min(100, Math.max(0, ((u.cpuUsageUsec - since.usec) / 1e6 / seconds / cores) * 100));
      if (track) track.cpu = { at: now, usec: u.cpuUsageUsec };
    }
    return {
      at: now,
      cpuCount: Math.max(1, Math.round(u.cpuCount)),
      cpuUsedPct: Math.round(cpuUsedPct * 100) / 100,
      memUsed: u.memoryBytes ?? 0,
      memTotal: u.memoryLimitBytes,
      diskUsed: u.diskUsedBytes ?? 0,
      diskTotal: u.diskTotalBytes,
      netSent: u.networkSentBytes,
      netReceived: u.networkReceivedBytes,
    };
  }
}
