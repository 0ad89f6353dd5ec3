import { describe, expect, it, vi } from "vitest";
import { MAX_LINE_BYTES, type ProcessEvent } from "./agent-client.js";
import { connectTestPeer } from "./test-peer.js";

const tick = () => new Promise((r) => setImmediate(r));
const stat = { name: "x", path: "/x", type: "file", size: 3, mode: 420, mtimeMs: 1, uid: 0, gid: 0 };

describe("AgentClient", () => {
  it("matches replies to requests by id, in any order, and parses them", async () => {
    const { client, peer } = connectTestPeer();
    const a = client.ping();
    const b = client.ps();
    const [ra, rb] = [await peer.next(), await peer.next()];
    expect([ra.msg.op, rb.msg.op]).toEqual(["ping", "ps"]);
    peer.ok(rb, { processes: [{ pid: 5, cmd: ["sh"], startedAtMs: 1, running: true, exitCode: null, signal: null, extra: "ignored" }] });
    peer.ok(ra, { version: "1.2.3", uptimeMs: 9 });
    expect(await a).toEqual({ version: "1.2.3", uptimeMs: 9 });
    expect((await b).processes[0]).toMatchObject({ pid: 5, running: true });
  });

  it("maps agent error codes onto the API registry", async () => {
    const { client, peer } = connectTestPeer();
    const cases: [string, string][] = [
      ["not_found", "file_not_found"],
      ["no_such_process", "process_not_found"],
      ["not_empty", "directory_not_empty"],
      ["exec_failed", "exec_failed"],
      ["no_space", "insufficient_storage"],
      ["name_too_long", "name_too_long"],
      ["busy", "file_busy"],
      ["cross_device", "cross_device"],
      ["symlink_loop", "symlink_loop"],
      ["not_regular", "not_a_regular_file"],
      ["stdin_closed", "stdin_closed"],
      ["something_new", "internal"],
    ];
    for (const [agentCode, apiCode] of cases) {
      const p = client.stat("/x");
      peer.fail(await peer.next(), agentCode);
      await expect(p).rejects.toMatchObject({ code: apiCode });
    }
  });

  it("reads an older agent's io_error texts for the errnos that are the caller's doing", async () => {
    const { client, peer } = connectTestPeer();
    const cases: [string, string][] = [
      ["write /tmp/.f.stasis-1: no space left on device", "insufficient_storage"],
      ["rename /tmp/x /.stasis/agent: device or resource busy", "file_busy"],
      ["rename /tmp/x /mnt/y: invalid cross-device link", "cross_device"],
      ["writing stdin: write |1: file already closed", "stdin_closed"],
      ["read /x: input/output error", "internal"],
    ];
    for (const [message, apiCode] of cases) {
      const p = client.stat("/x");
      peer.fail(await peer.next(), "io_error", message);
      await expect(p).rejects.toMatchObject({ code: apiCode });
    }
  });

  it("fails a request whose reply is over the line limit at once, naming the op, instead of timing out", async () => {
    const { client, peer } = connectTestPeer();
    const p = client.list("/big", 1, 60_000);
    const { id } = (await peer.next()).msg;
    peer.output.write(`{"id":${String(id)},"ok":true,"result":{"entries":[`);
    peer.output.write(Buffer.alloc(MAX_LINE_BYTES, "x"));
    peer.output.write("]}}\n");
    await expect(p).rejects.toMatchObject({ code: "reply_too_large", status: 502, message: expect.stringMatching(/'list' reply exceeded/) });
    // The stream is in step again.
    const q = client.ping();
    peer.ok(await peer.next(), { version: "v", uptimeMs: 1 });
    expect(await q).toMatchObject({ version: "v" });
  });

  it("rejects a reply that does not match the op's schema, naming the op and the field", async () => {
    const { client, peer } = connectTestPeer();
    const p = client.stat("/x");
    peer.ok(await peer.next(), { ...stat, size: "big" });
    await expect(p).rejects.toMatchObject({ code: "sandbox_failed", message: expect.stringMatching(/malformed 'stat' reply: size/) });
    // A broken envelope fails its request at once instead of letting it time out.
    const q = client.exec({ cmd: ["true"] });
    peer.says({ id: (await peer.next()).msg.id, ok: "yes" });
    await expect(q).rejects.toMatchObject({ code: "sandbox_failed", message: expect.stringMatching(/malformed 'exec' reply/) });
    expect(client.closed).toBe(false);
  });

  it("keeps events that arrive before their subscriber and replays them", async () => {
    const { client, peer } = connectTestPeer();
    peer.says({ ev: "out", pid: 7, fd: 1, data: Buffer.from("early").toString("base64") });
    await tick();
    const got: ProcessEvent[] = [];
    client.subscribe(7, (e) => got.push(e));
    peer.saysFrame({ ev: "out", pid: 7, fd: 2 }, Buffer.from("framed"));
    peer.says({ ev: "exit", pid: 7, code: 0, signal: null });
    await tick();
    expect(got.map((e) => (e.ev === "out" ? `${e.fd}:${e.data.toString()}` : e.ev))).toEqual(["1:early", "2:framed", "exit"]);
  });

  it("bounds output kept for pids nobody listens to, but never drops an exit", async () => {
    const { client, peer } = connectTestPeer();
    const chunk = Buffer.alloc(3 * 1024 * 1024, "a").toString("base64");
    for (let pid = 100; pid < 110; pid++) peer.says({ ev: "out", pid, fd: 1, data: chunk });
    peer.says({ ev: "exit", pid: 109, code: 3, signal: null });
    await new Promise((r) => setTimeout(r, 50));
    const kept: ProcessEvent[] = [];
    for (let pid = 100; pid < 110; pid++) client.subscribe(pid, (e) => kept.push(e));
    const bytes = kept.reduce((n, e) => n + (e.ev === "out" ? e.data.length : 0), 0);
    expect(bytes).toBeLessThanOrEqual(8 * 1024 * 1024);
    expect(kept.filter((e) => e.ev === "exit")).toHaveLength(1);
  });

  it("survives some garbage, wrong shapes and over-long lines from the sandbox", async () => {
    const { client, peer } = connectTestPeer();
    peer.says("{not json");
    peer.says("[1,2,3]");
    peer.says({ ev: "out", pid: "nope", fd: 9, data: 1 });
    peer.says({ ev: "from-the-future" });
    peer.says({ id: 999_999, ok: true });
    peer.output.write(Buffer.alloc(MAX_LINE_BYTES + 10, "x"));
    peer.output.write("\n");
    const p = client.ping();
    peer.ok(await peer.next(), { version: "v", uptimeMs: 1 });
    expect(await p).toMatchObject({ version: "v" });
    expect(client.closed).toBe(false);
  });

  it("closes the channel, with the reason, on a stream of garbage", async () => {
    const { client, peer } = connectTestPeer();
    const p = expect(client.ps()).rejects.toMatchObject({ code: "sandbox_failed", message: /more than 100 malformed messages/ });
    await peer.next();
    let reason = "";
    client.on("closed", (r: string) => (reason = r));
    peer.output.write(Buffer.from("garbage\n".repeat(10_000)));
    await tick();
    expect(reason).toMatch(/more than 100 malformed messages within 10 s \(last: unparsable JSON/);
    await p;
  });

  it("closes the channel when a frame announces more than the limits, and allocates nothing for it", async () => {
    const { client, peer } = connectTestPeer();
    const p = client.ps();
    await peer.next();
    const lie = Buffer.alloc(9);
    lie.writeUInt32BE(20, 1);
    lie.writeUInt32BE(0xffff_ffff, 5);
    peer.output.write(lie);
    await expect(p).rejects.toMatchObject({ message: expect.stringMatching(/4294967295 payload bytes \(limits 65536 and 4194304\)/) });
    expect(client.closed).toBe(true);
  });

  it("rejects requests in flight when the channel closes, and later ones at once", async () => {
    const { client, peer } = connectTestPeer();
    const p = client.ps();
    await peer.next();
    peer.output.end();
    await expect(p).rejects.toMatchObject({ code: "sandbox_failed" });
    await expect(client.ps()).rejects.toMatchObject({ code: "sandbox_failed" });
  });

  it("times out a request the agent never answers", async () => {
    const { client } = connectTestPeer();
    await expect(client.list("/", 1, 50)).rejects.toMatchObject({ code: "agent_timeout" });
  });
});

describe("AgentClient protocol versions", () => {
  it("becomes ready on a hello of protocol 1 or 2, and uses frames only with 2", async () => {
    for (const protocol of [1, 2]) {
      const { client, peer } = connectTestPeer();
      const ready = client.waitReady(1000);
      peer.hello(protocol);
      expect(await ready).toBe("9.9.9");
      expect(client.protocol).toBe(protocol);
      expect(client.framed).toBe(protocol >= 2);
    }
  });

  it("fails with both versions named when the agent speaks an unsupported protocol", async () => {
    const { client, peer } = connectTestPeer();
    const ready = client.waitReady(1000);
    peer.hello(4, "7.0.0");
    await expect(ready).rejects.toMatchObject({
      code: "sandbox_failed",
      message: "the sandbox agent 7.0.0 speaks protocol 4, but this daemon speaks protocols 1 to 3",
    });
    expect(client.closed).toBe(true);
    await expect(client.waitReady(1000)).rejects.toMatchObject({ message: /protocol 4/ });
  });

  it("learns the protocol from a ping when it gets no hello (a reattached or restored agent)", async () => {
    for (const [result, protocol] of [
      [{ version: "0.1.0", uptimeMs: 5 }, 1],
      [{ version: "0.2.0", uptimeMs: 5, protocol: 2 }, 2],
    ] as const) {
      const { client, peer } = connectTestPeer();
      const ready = client.waitReady(1000);
      const ping = await peer.next();
      expect(ping.msg.op).toBe("ping");
      peer.ok(ping, result);
      expect(await ready).toBe(result.version);
      expect(client.protocol).toBe(protocol);
    }
  });

  it("rejects an unsupported protocol learnt from a ping", async () => {
    const { client, peer } = connectTestPeer();
    const ready = client.waitReady(1000);
    peer.ok(await peer.next(), { version: "0.0.1", uptimeMs: 5, protocol: 0 });
    await expect(ready).rejects.toMatchObject({ message: /speaks protocol 0, but this daemon speaks protocols 1 to 3/ });
  });
});

describe("AgentClient.resync (a daemon restart)", () => {
  it("drops what the agent wrote before answering the resync, and holds requests until then so no reply is lost", async () => {
    const { client, peer } = connectTestPeer();
    const synced = client.resync(1000);
    // A request made during the resync is not sent yet: the agent answers requests concurrently, and a
    // reply that came before the resync's own would be dropped with what the previous daemon left.
    const stat = client.stat("/f");
    const ping = await peer.next();
    expect(ping.msg.op).toBe("ping");
    await tick();
    expect(peer.received.map((r) => r.msg.op)).toEqual(["ping"]);
    // The tail of a frame and a reply to a request of the previous daemon, then the resync's answer.
    peer.output.write(Buffer.from([0, 0, 0, 1, 0]));
    peer.says({ id: 1, ok: true, result: {} });
    peer.ok(ping, { version: "0.3.0", protocol: 2, uptimeMs: 5 });
    expect(await synced).toBe("0.3.0");
    const req = await peer.next();
    expect(req.msg.op).toBe("stat");
    peer.ok(req, { name: "f", path: "/f", type: "file", size: 1, mode: 420, mtimeMs: 1, uid: 0, gid: 0 });
    expect((await stat).size).toBe(1);
  });

  it("a held request times out on its own deadline, and fails at once if the channel closes", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { client } = connectTestPeer();
    client.resync(120_000).catch(() => {});
    const late = client.stat("/f");
    const expectation = expect(late).rejects.toMatchObject({ code: "agent_timeout" });
    await vi.advanceTimersByTimeAsync(30_000);
    await expectation;
    vi.useRealTimers();
    const held = client.stat("/g");
    client.close("gone");
    await expect(held).rejects.toMatchObject({ code: "sandbox_failed" });
  });
});

describe("AgentClient.restored (the first exchange after a restore from a checkpoint)", () => {
  it("checkpointed in step: a newline ends any line the agent had begun, then a ping; nothing it says is dropped", async () => {
    const { client, peer } = connectTestPeer();
    const ready = client.restored(1000, true);
    const ping = await peer.next();
    expect(ping.msg.op).toBe("ping");
    expect(peer.head.toString().startsWith('\n{"id":')).toBe(true);
    expect(peer.paddings).toBe(0);
    const events: unknown[] = [];
    client.subscribe(7, (e) => events.push(e));
    peer.says({ ev: "exit", pid: 7, code: 0, signal: null });
    peer.ok(ping, { version: "0.3.0", protocol: 2, uptimeMs: 5 });
    expect(await ready).toBe("0.3.0");
    expect(events).toHaveLength(1);
  });

  it("not in step: a full resync (padding, and what the agent wrote before its answer dropped)", async () => {
    const { client, peer } = connectTestPeer();
    const ready = client.restored(1000, false);
    const ping = await peer.next();
    expect(peer.paddings).toBe(1);
    // The rest of a message the agent was halfway through writing when it was checkpointed.
    peer.output.write(Buffer.from([0, 0, 0, 1]));
    peer.says("ult\":{}}");
    peer.ok(ping, { version: "0.3.0", protocol: 2, uptimeMs: 5 });
    expect(await ready).toBe("0.3.0");
    expect(client.closed).toBe(false);
  });
});
