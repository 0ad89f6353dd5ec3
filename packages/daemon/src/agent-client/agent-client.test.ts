import { PassThrough } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { AgentClient, MAX_LINE_BYTES, type ProcessEvent } from "./agent-client.js";

function setup() {
  const input = new PassThrough();
  const output = new PassThrough();
  const client = new AgentClient({ input, output }, pino({ level: "silent" }));
  const sent: Record<string, unknown>[] = [];
  let buf = "";
  input.on("data", (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      sent.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  const agentSays = (msg: unknown) => output.write(`${typeof msg === "string" ? msg : JSON.stringify(msg)}\n`);
  const tick = () => new Promise((r) => setImmediate(r));
  return { client, sent, agentSays, output, tick };
}

describe("AgentClient", () => {
  it("matches replies to requests by id, in any order", async () => {
    const { client, sent, agentSays, tick } = setup();
    const a = client.request<{ v: number }>("ping", {});
    const b = client.request<{ v: number }>("ps", {});
    await tick();
    expect(sent.map((m) => m.op)).toEqual(["ping", "ps"]);
    agentSays({ id: sent[1]!.id, ok: true, result: { v: 2 } });
    agentSays({ id: sent[0]!.id, ok: true, result: { v: 1 } });
    expect(await a).toEqual({ v: 1 });
    expect(await b).toEqual({ v: 2 });
  });

  it("maps agent error codes onto the API registry", async () => {
    const { client, sent, agentSays, tick } = setup();
    const cases: [string, string][] = [
      ["not_found", "file_not_found"],
      ["no_such_process", "process_not_found"],
      ["not_empty", "directory_not_empty"],
      ["exec_failed", "exec_failed"],
      ["something_new", "internal"],
    ];
    for (const [agentCode, apiCode] of cases) {
      const p = client.request("stat", { path: "/x" });
      await tick();
      agentSays({ id: sent.at(-1)!.id, ok: false, error: { code: agentCode, message: "m" } });
      await expect(p).rejects.toMatchObject({ code: apiCode });
    }
  });

  it("keeps events that arrive before their subscriber and replays them", async () => {
    const { client, agentSays, tick } = setup();
    agentSays({ ev: "out", pid: 7, fd: 1, data: Buffer.from("early").toString("base64") });
    await tick();
    const got: ProcessEvent[] = [];
    client.subscribe(7, (e) => got.push(e));
    agentSays({ ev: "exit", pid: 7, code: 0, signal: null });
    await tick();
    expect(got.map((e) => e.ev)).toEqual(["out", "exit"]);
    expect(got[0]!.ev === "out" && got[0]!.data.toString()).toBe("early");
  });

  it("bounds output kept for pids nobody listens to, but never drops an exit", async () => {
    const { client, agentSays, tick } = setup();
    const chunk = Buffer.alloc(3 * 1024 * 1024, "a").toString("base64");
    for (let pid = 100; pid < 110; pid++) agentSays({ ev: "out", pid, fd: 1, data: chunk });
    agentSays({ ev: "exit", pid: 109, code: 3, signal: null });
    await tick();
    await new Promise((r) => setTimeout(r, 50));
    const kept: ProcessEvent[] = [];
    for (let pid = 100; pid < 110; pid++) client.subscribe(pid, (e) => kept.push(e));
    const bytes = kept.reduce((n, e) => n + (e.ev === "out" ? e.data.length : 0), 0);
    expect(bytes).toBeLessThanOrEqual(8 * 1024 * 1024);
    expect(kept.filter((e) => e.ev === "exit")).toHaveLength(1);
  });

  it("survives garbage, wrong shapes and over-long lines from the sandbox", async () => {
    const { client, sent, agentSays, output, tick } = setup();
    agentSays("{not json");
    agentSays("[1,2,3]");
    agentSays({ ev: "out", pid: "nope", fd: 9, data: 1 });
    agentSays({ id: 999_999, ok: true });
    output.write(Buffer.alloc(MAX_LINE_BYTES + 10, "x"));
    output.write("\n");
    const p = client.request<{ ok: boolean }>("ping", {});
    await tick();
    agentSays({ id: sent.at(-1)!.id, ok: true, result: { ok: true } });
    expect(await p).toEqual({ ok: true });
    expect(client.closed).toBe(false);
  });

  it("rejects requests in flight when the channel closes, and later ones at once", async () => {
    const { client, output, tick } = setup();
    const p = client.request("ps", {});
    await tick();
    output.end();
    await expect(p).rejects.toMatchObject({ code: "sandbox_failed" });
    await expect(client.request("ps", {})).rejects.toMatchObject({ code: "sandbox_failed" });
  });

  it("times out a request the agent never answers", async () => {
    const { client } = setup();
    await expect(client.request("ps", {}, 50)).rejects.toMatchObject({ code: "agent_timeout" });
  });

  it("becomes ready on hello", async () => {
    const { client, agentSays } = setup();
    const ready = client.waitReady(1000);
    agentSays({ ev: "hello", version: "9.9.9", protocol: 1 });
    expect(await ready).toBe("9.9.9");
  });
});
