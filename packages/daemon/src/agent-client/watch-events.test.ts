import { describe, expect, it } from "vitest";
import type { FsEvent } from "./agent-protocol.js";
import { connectTestPeer } from "./test-peer.js";

const tick = () => new Promise((r) => setImmediate(r));

describe("AgentClient file watches", () => {
  it("delivers a watch's events, also those that came with its reply before anyone listened", async () => {
    const { client, peer } = connectTestPeer();
    peer.hello(3);
    const started = client.watch("/tmp", true);
    const req = await peer.next();
    expect(req.msg).toMatchObject({ op: "watch", path: "/tmp", recursive: true });
    // Reply and first event in one write: the event is parsed before the caller's listener exists.
    peer.ok(req, { wid: 7 });
    peer.says({ ev: "fs", wid: 7, events: [{ name: "a", op: "create" }] });
    const wid = await started;
    const seen: FsEvent[] = [];
    client.onWatch(wid, (e) => seen.push(e));
    peer.says({ ev: "fs", wid: 7, dropped: 3, end: "gone" });
    await tick();
    expect(seen).toEqual([
      { ev: "fs", wid: 7, events: [{ name: "a", op: "create" }] },
      { ev: "fs", wid: 7, dropped: 3, end: "gone" },
    ]);
  });

  it("keeps only a few events of watches nobody listens to, and drops malformed ones", async () => {
    const { client, peer } = connectTestPeer();
    peer.hello(3);
    for (let i = 0; i < 100; i++) peer.says({ ev: "fs", wid: 1, events: [{ name: `f${i}`, op: "write" }] });
    peer.says({ ev: "fs", wid: 1, events: [{ name: "x", op: "explode" }] });
    await tick();
    const seen: FsEvent[] = [];
    client.onWatch(1, (e) => seen.push(e));
    expect(seen).toHaveLength(16);
    expect(client.closed).toBe(false);
  });
});

describe("AgentClient.clearWatches", () => {
  it("ends what a previous channel left, before any watch of its own (and not on agents without watches)", async () => {
    const { client, peer } = connectTestPeer();
    peer.hello(3);
    await tick();
    client.clearWatches();
    const started = client.watch("/w", false);
    const first = await peer.next();
    expect(first.msg).toMatchObject({ op: "unwatch", all: true });
    await tick();
    peer.ok(first);
    const second = await peer.next();
    expect(second.msg).toMatchObject({ op: "watch", path: "/w" });
    peer.ok(second, { wid: 1 });
    expect(await started).toBe(1);

    const old = connectTestPeer();
    old.peer.hello(2);
    await tick();
    old.client.clearWatches();
    void old.client.ping();
    expect((await old.peer.next()).msg).toMatchObject({ op: "ping" });
  });
});
