import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { describe, expect, it } from "vitest";
import { Sessions } from "./sessions.js";

function fakeSession(closed: string[], name: string) {
  const server = { close: async () => void closed.push(name) } as unknown as McpServer;
  return { server, transport: {} as StreamableHTTPServerTransport };
}

describe("Sessions", () => {
  it("drops the least recently used beyond the bound, closing it", () => {
    const closed: string[] = [];
    const sessions = new Sessions(2, 60_000);
    sessions.add("a", fakeSession(closed, "a"));
    sessions.add("b", fakeSession(closed, "b"));
    expect(sessions.get("a")).toBeDefined(); // a is now the most recently used
    sessions.add("c", fakeSession(closed, "c"));
    expect(closed).toEqual(["b"]);
    expect(sessions.get("b")).toBeUndefined();
    expect(sessions.size).toBe(2);
    sessions.close();
    expect(closed.sort()).toEqual(["a", "b", "c"]);
  });

  it("closes sessions idle for longer than idleMs", () => {
    const closed: string[] = [];
    let now = 0;
    const sessions = new Sessions(10, 1000, () => now);
    sessions.add("old", fakeSession(closed, "old"));
    now = 600;
    sessions.add("new", fakeSession(closed, "new"));
    now = 1500;
    sessions.closeIdle();
    expect(closed).toEqual(["old"]);
    expect(sessions.get("new")).toBeDefined();
    sessions.close();
  });
});
