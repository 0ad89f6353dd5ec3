import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pinAgent, removeUnusedAgents } from "./agent-binary.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "stasis-agent-pin-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("pinned agent binaries", () => {
  it("keeps each agent under its content's hash, so a rebuilt agent never replaces the one sandboxes run", () => {
    const source = join(dir, "stasis-agent");
    writeFileSync(source, "agent v1");
    const v1 = pinAgent(source, join(dir, "data"));
    expect(v1.path).toBe(join(dir, "data", "agents", v1.hash, "stasis-agent"));
    expect(readFileSync(v1.path, "utf8")).toBe("agent v1");
    expect(statSync(v1.path).mode & 0o777).toBe(0o755);
    expect(pinAgent(source, join(dir, "data"))).toEqual(v1);

    writeFileSync(source, "agent v2");
    const v2 = pinAgent(source, join(dir, "data"));
    expect(v2.hash).not.toBe(v1.hash);
    expect(readFileSync(v1.path, "utf8")).toBe("agent v1");

    // v1 stays while a sandbox records it, and goes once none does.
    expect(removeUnusedAgents(join(dir, "data"), v2, [v1.path, null])).toEqual([]);
    expect(removeUnusedAgents(join(dir, "data"), v2, [null])).toEqual([v1.hash]);
    expect(existsSync(v1.path)).toBe(false);
    expect(existsSync(v2.path)).toBe(true);
  });

  it("leaves a missing agent to the runtime's own error", () => {
    expect(pinAgent(join(dir, "nope"), dir)).toEqual({ path: join(dir, "nope"), hash: "unpinned" });
    expect(removeUnusedAgents(join(dir, "data"), { path: "x", hash: "y" }, [])).toEqual([]);
  });
});
