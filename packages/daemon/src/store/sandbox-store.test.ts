import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Database } from "./database.js";
import { SandboxStore, type SandboxRecord } from "./sandbox-store.js";
import { testRecord } from "./test-records.js";

const dirs: string[] = [];
function store(): { s: SandboxStore; db: Database; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "stasis-store-"));
  dirs.push(dir);
  const path = join(dir, "db.sqlite");
  const db = new Database(path);
  return { s: new SandboxStore(db), db, path };
}
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function rec(id: string, createdAt: number, extra: Partial<SandboxRecord> = {}): SandboxRecord {
  return testRecord(id, { createdAt, timeoutMs: 1000, ...extra });
}

describe("SandboxStore", () => {
  it("keeps the standby policy and can change it", () => {
    const { s, db } = store();
    s.insert(rec("sbx_p", 1, { forkedFrom: "sbx_src" }));
    expect(s.get("sbx_p")).toMatchObject({ onTimeout: "standby", idleTimeoutMs: 15_000, hibernateAfterMs: 600_000, forkedFrom: "sbx_src" });
    s.setPolicy("sbx_p", { onTimeout: "kill", idleTimeoutMs: 0, hibernateAfterMs: 5000 });
    expect(s.get("sbx_p")).toMatchObject({ onTimeout: "kill", idleTimeoutMs: 0, hibernateAfterMs: 5000 });
    s.setStandby("sbx_p", "hibernated", { since: 42, reason: "idle" }, null);
    expect(s.get("sbx_p")).toMatchObject({ state: "hibernated", standbySince: 42, standbyReason: "idle" });
    expect(s.live().map((r) => r.id)).toContain("sbx_p");
    db.close();
  });

  it("round-trips records and survives reopening", () => {
    const { s, db, path } = store();
    s.insert(rec("sbx_a", 1, { env: { A: "1" }, metadata: { team: "ml" } }));
    s.setState("sbx_a", "failed", "why");
    db.close();
    const againDb = new Database(path);
    expect(new SandboxStore(againDb).get("sbx_a")).toMatchObject({ state: "failed", stateReason: "why", env: { A: "1" }, metadata: { team: "ml" } });
    againDb.close();
  });

  it("lists newest first, filters by state and metadata, and pages with a keyset cursor", () => {
    const { s, db } = store();
    s.insert(rec("sbx_1", 10, { metadata: { team: "ml", env: "dev" } }));
    s.insert(rec("sbx_2", 20, { metadata: { team: "ml" }, state: "stopped" }));
    s.insert(rec("sbx_3", 20, { metadata: { team: "web" } }));
    s.insert(rec("sbx_4", 30));
    expect(s.list({ limit: 10 }).map((r) => r.id)).toEqual(["sbx_4", "sbx_3", "sbx_2", "sbx_1"]);
    expect(s.list({ limit: 10, state: "stopped" }).map((r) => r.id)).toEqual(["sbx_2"]);
    expect(s.list({ limit: 10, metadata: { team: "ml" } }).map((r) => r.id)).toEqual(["sbx_2", "sbx_1"]);
    expect(s.list({ limit: 10, metadata: { team: "ml", env: "dev" } }).map((r) => r.id)).toEqual(["sbx_1"]);
    expect(s.list({ limit: 2, after: { createdAt: 20, id: "sbx_3" } }).map((r) => r.id)).toEqual(["sbx_2", "sbx_1"]);
    expect(s.live().map((r) => r.id).sort()).toEqual(["sbx_1", "sbx_3", "sbx_4"]);
    db.close();
  });

  it("treats metadata filter values as data, not SQL", () => {
    const { s, db } = store();
    s.insert(rec("sbx_1", 1, { metadata: { k: "v" } }));
    expect(s.list({ limit: 10, metadata: { "k' OR 1=1 --": "x" } })).toEqual([]);
    db.close();
  });
});
