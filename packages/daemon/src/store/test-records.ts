import type { SandboxRecord } from "./sandbox-store.js";

/** A plausible running gVisor sandbox record for tests; `extra` overrides any field. */
export function testRecord(id: string, extra: Partial<SandboxRecord> = {}): SandboxRecord {
  const createdAt = extra.createdAt ?? Date.now();
  const timeoutMs = extra.timeoutMs ?? 300_000;
  return {
    id,
    template: "base",
    runtime: "gvisor",
    state: "running",
    stateReason: null,
    cpu: 1,
    memoryMiB: 512,
    diskMiB: 1024,
    env: {},
    metadata: {},
    timeoutMs,
    createdAt,
    expiresAt: createdAt + timeoutMs,
    standbySince: null,
    standbyReason: null,
    onTimeout: "standby",
    idleTimeoutMs: 15_000,
    hibernateAfterMs: 600_000,
    forkedFrom: null,
    pooled: false,
    createdVia: "cold",
    agent: null,
    network: null,
    ...extra,
  };
}
