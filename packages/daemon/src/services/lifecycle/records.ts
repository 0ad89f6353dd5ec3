import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Runtime, Sandbox } from "@stasis/protocol";
import { ApiError } from "../../errors/api-error.js";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import { TemplateNotFoundError, type ResolvedTemplate } from "../../templates/template-store.js";
import { Limiter } from "../../concurrency/limiter.js";

/** States that hold a sandbox's memory (or are on their way to or from it): they count against capacity. */
export const RESIDENT_STATES = ["creating", "running", "paused", "hibernating", "resuming"] as const;

/** What a sandbox is made of: its template (resolved to a version) and the resources and env it gets. */
export interface SandboxShape {
  template: ResolvedTemplate;
  runtime: Runtime;
  cpu: number;
  memoryMiB: number;
  diskMiB: number;
  env: Record<string, string>;
}

export function newSandboxId(): string {
  return `sbx_${randomBytes(10).toString("hex").slice(0, 16)}`;
}

/** States from which a sandbox can be woken, paused, hibernated or forked. */
export function isAwakeOrAsleep(state: SandboxRecord["state"]): boolean {
  return state === "running" || state === "paused" || state === "hibernated";
}

/** Whether a sandbox was made with exactly this shape: template version, runtime, cpu, memory, disk. */
export function hasShape(r: SandboxRecord, shape: SandboxShape): boolean {
  return r.template === shape.template.ref && r.runtime === shape.runtime && r.cpu === shape.cpu && r.memoryMiB === shape.memoryMiB && r.diskMiB === shape.diskMiB;
}

/** A warm-pool member that is booting, booted or frozen (not dead). */
export function isLiveMember(r: SandboxRecord): boolean {
  return r.state === "creating" || r.state === "running" || r.state === "paused";
}

/**
 * The lifetime's end after standby: standby does not count, so the end moves back by the time spent
 * asleep; a sandbox put to sleep by its lifetime's end wakes with a fresh lifetime.
 */
export function wokenExpiry(record: Pick<SandboxRecord, "expiresAt" | "standbySince" | "timeoutMs">, now: number): number | null {
  if (record.expiresAt === null) return null;
  const since = record.standbySince ?? now;
  const remaining = record.expiresAt - since;
  return remaining > 0 ? now + remaining : now + record.timeoutMs;
}

export function asApiError(err: unknown, what: string): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof TemplateNotFoundError) return new ApiError("template_not_found", err.message);
  return new ApiError("sandbox_failed", `${what}: ${(err as Error).message}`);
}

export function notRunning(record: SandboxRecord): ApiError {
  return new ApiError("sandbox_not_running", `sandbox ${record.id} is ${record.state}${record.stateReason ? ` (${record.stateReason})` : ""}`);
}

/** Runs `fn` over items with at most `limit` in flight. */
export async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  const limiter = new Limiter(limit);
  await Promise.all(items.map((item) => limiter.run(() => fn(item))));
}

/** Whether the host can give `memoryMiB` more and still keep a tenth of its memory free. */
export function hasMemoryFor(memoryMiB: number): boolean {
  try {
    const info = readFileSync("/proc/meminfo", "utf8");
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(info)?.[1] ?? NaN);
    return kib("MemAvailable") - memoryMiB * 1024 > kib("MemTotal") / 10;
  } catch {
    return false;
  }
}

/** The list cursor that continues right after this sandbox (lists are newest first). */
export function listCursor(sandbox: Pick<Sandbox, "createdAt" | "id">): string {
  return Buffer.from(`${Date.parse(sandbox.createdAt)}:${sandbox.id}`).toString("base64url");
}

export function toSandbox(r: SandboxRecord): Sandbox {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: r.id,
    template: r.template,
    runtime: r.runtime,
    state: r.state,
    stateReason: r.stateReason,
    cpu: r.cpu,
    memoryMiB: r.memoryMiB,
    diskMiB: r.diskMiB,
    env: r.env,
    metadata: r.metadata,
    timeoutMs: r.timeoutMs,
    onTimeout: r.onTimeout,
    idleTimeoutMs: r.idleTimeoutMs,
    hibernateAfterMs: r.hibernateAfterMs,
    createdAt: new Date(r.createdAt).toISOString(),
    // In standby the lifetime clock stands still, so the sandbox has no expiry until it runs again.
    expiresAt: r.standbySince !== null ? null : iso(r.expiresAt),
    standbySince: iso(r.standbySince),
    standbyReason: r.standbyReason,
    forkedFrom: r.forkedFrom,
    network: {
      address: r.network?.address ?? null,
      policy: r.network?.policy ?? { internet: false, allowOut: [], denyOut: [] },
      secrets: Object.keys(r.network?.placeholders ?? {}),
    },
    createdVia: r.createdVia,
  };
}
