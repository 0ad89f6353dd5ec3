import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import type { WatchEvent } from "@stasis/protocol";
import type { FsEvent } from "../agent-client/agent-protocol.js";
import type { SandboxService } from "./sandbox-service.js";
import { MAX_QUEUED_CHANGES, WatchService } from "./watch-service.js";

/** A sandbox whose agent is a stand-in: it records watch calls and lets the test send `fs` events. */
function fakeSandbox(protocol: number) {
  const agent = Object.assign(new EventEmitter(), {
    protocol,
    version: "0.x",
    closed: false,
    unwatched: [] as (number | null)[],
    listener: null as ((e: FsEvent) => void) | null,
    watch: async () => 5,
    onWatch(_wid: number, l: (e: FsEvent) => void) {
      agent.listener = l;
      return () => (agent.listener = null);
    },
    unwatch: async (wid: number | null) => void agent.unwatched.push(wid),
  });
  const sandboxes = { acquire: async () => ({ record: { id: "sbx" }, agent }), hold: () => () => {} } as unknown as SandboxService;
  return { agent, service: new WatchService(sandboxes) };
}

describe("WatchService", () => {
  it("refuses with agent_outdated on an agent older than protocol 3 (a sandbox of an older daemon)", async () => {
    const { service } = fakeSandbox(2);
    await expect(service.watch("sbx", "/tmp", false).next()).rejects.toMatchObject({ code: "agent_outdated" });
  });

  it("bounds what a slow client leaves queued, says how much was dropped, and ends the agent's watch when the client leaves", async () => {
    const { agent, service } = fakeSandbox(3);
    const events = service.watch("sbx", "/w", true);
    expect((await events.next()).value).toEqual({ type: "start", path: "/w" });
    const many = Array.from({ length: 256 }, (_, i) => ({ name: `d/f${i}`, op: "write" as const }));
    for (let i = 0; i < MAX_QUEUED_CHANGES / 256 + 2; i++) agent.listener!({ ev: "fs", wid: 5, events: many, dropped: i === 0 ? 4 : 0 });
    const first = (await events.next()).value as WatchEvent;
    const overflow = Math.ceil(MAX_QUEUED_CHANGES / 256 + 2) * 256 - MAX_QUEUED_CHANGES;
    expect(first).toEqual({ type: "dropped", count: 4 + overflow });
    expect((await events.next()).value).toEqual({ type: "write", name: "d/f0", path: "/w/d/f0" });
    await events.return(undefined);
    expect(agent.unwatched).toEqual([5]);
  });

  it("ends with the agent's reason when the watched directory goes away", async () => {
    const { agent, service } = fakeSandbox(3);
    const events = service.watch("sbx", "/w", false);
    await events.next();
    agent.listener!({ ev: "fs", wid: 5, events: [{ name: "x", op: "remove" }], end: "the watched directory was removed or moved" });
    const rest: WatchEvent[] = [];
    for await (const e of events) rest.push(e);
    expect(rest).toEqual([
      { type: "remove", name: "x", path: "/w/x" },
      { type: "end", reason: "the watched directory was removed or moved" },
    ]);
    expect(agent.unwatched).toEqual([]);
  });
});
