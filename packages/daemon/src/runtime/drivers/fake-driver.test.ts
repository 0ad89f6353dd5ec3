import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { AgentClient, type ProcessEvent } from "../../agent-client/agent-client.js";
import { CheckpointImage } from "../checkpoint-image.js";
import { canCheckpoint, canPause, type SandboxLaunchSpec } from "../driver.js";
import { FakeDriver, FakeHost } from "./fake-driver.js";

// The fake itself, through the daemon's real AgentClient: what lifecycle tests rely on it to do.
const dir = mkdtempSync(join(tmpdir(), "stasis-fake-driver-"));
const log = pino({ level: "silent" });
const clients: AgentClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close("test over");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function spec(id: string): SandboxLaunchSpec {
  const runtimeDir = join(dir, id);
  mkdirSync(runtimeDir, { recursive: true });
  return { id, dir: runtimeDir, rootfs: join(dir, "rootfs"), agentPath: "/none", cpu: 1, memoryMiB: 64, pidsLimit: 64, hostname: "sandbox", netnsPath: null };
}

async function launch(driver: FakeDriver, id: string): Promise<AgentClient> {
  const launched = await driver.launch(spec(id));
  const agent = new AgentClient(launched.channel, log);
  clients.push(agent);
  await agent.waitReady(1_000);
  return agent;
}

/** Runs to exit with a subscription; returns stdout+stderr and the exit event. */
async function exec(agent: AgentClient, script: string, extra: Record<string, unknown> = {}): Promise<{ pid: number; output: string; exit: Promise<ProcessEvent> }> {
  const { pid } = await agent.exec({ cmd: ["/bin/sh", "-c", script], env: {}, stdin: false, subscribe: true, window: 65_536, ...extra });
  let output = "";
  const exit = new Promise<ProcessEvent>((resolve) => {
    agent.subscribe(pid, (e) => {
      if (e.ev === "out") output += e.data.toString();
      else resolve(e);
    });
  });
  await exit.catch(() => {});
  return { pid, output, exit };
}

describe("fake driver and agent", () => {
  it("says hello, answers ping, runs scripts with exit codes, and refuses bad requests", async () => {
    const driver = new FakeDriver(new FakeHost());
    const agent = await launch(driver, "a1");
    expect(agent.version).toBe("fake");
    expect(await agent.ping()).toMatchObject({ version: "fake", protocol: 1 });
    const r = await exec(agent, "echo one; false || echo 'two words' && nope; exit 4");
    expect(r.output).toBe("one\ntwo words\nsh: 1: nope: not found\n");
    expect(await r.exit).toMatchObject({ ev: "exit", code: 4, signal: null });
    await expect(agent.exec({ cmd: [] })).rejects.toMatchObject({ code: "invalid_request" });
  });

  it("keeps output for a later attach, signals process groups, and pipes stdin to cat", async () => {
    const driver = new FakeDriver(new FakeHost());
    const agent = await launch(driver, "a2");
    const { pid } = await agent.exec({ cmd: ["/bin/sh", "-c", "echo early; sleep infinity"], env: {}, stdin: false, subscribe: false, window: 0 });
    const events: ProcessEvent[] = [];
    agent.subscribe(pid, (e) => events.push(e));
    expect(await agent.attach({ pid, window: 65_536, replay: true })).toEqual({ pid, running: true });
    await agent.signal({ pid, signal: "term" });
    await expect(agent.signal({ pid, signal: "SIGTERM" })).rejects.toMatchObject({ code: "process_not_found" });
    expect(events.map((e) => (e.ev === "out" ? e.data.toString() : `${e.code} ${e.signal}`))).toEqual(["early\n", "143 SIGTERM"]);
    const cat = await agent.exec({ cmd: ["cat"], env: {}, stdin: true, subscribe: true, window: 65_536 });
    const out: string[] = [];
    const exited = new Promise((resolve) => agent.subscribe(cat.pid, (e) => (e.ev === "out" ? out.push(e.data.toString()) : resolve(e.code))));
    await agent.stdin(cat.pid, Buffer.from("hi\n"), true);
    expect(await exited).toBe(0);
    expect(out).toEqual(["hi\n"]);
  });

  it("frozen, answers nothing and its sleeps stand still; thawed, it carries on", async () => {
    const driver = new FakeDriver(new FakeHost());
    const agent = await launch(driver, "a3");
    const { pid } = await agent.exec({ cmd: ["/bin/sh", "-c", "sleep 0.05; echo woke"], env: {}, stdin: false, subscribe: true, window: 65_536 });
    let exitedAt = 0;
    agent.subscribe(pid, (e) => {
      if (e.ev === "exit") exitedAt = Date.now();
    });
    await driver.pause({ id: "a3", dir });
    expect(await driver.observe({ id: "a3", dir })).toBe("paused");
    let answered = false;
    const ping = agent.ping().then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 100));
    expect([answered, exitedAt]).toEqual([false, 0]);
    await driver.resume({ id: "a3", dir });
    await ping;
    await new Promise((r) => setTimeout(r, 100));
    expect(exitedAt).toBeGreaterThan(0);
  });

  it("checkpoints memory and processes to an image, stops, and restores under another id", async () => {
    const host = new FakeHost();
    const driver = new FakeDriver(host);
    const agent = await launch(driver, "a4");
    await exec(agent, "incr; incr");
    const bg = await agent.exec({ cmd: ["/bin/sh", "-c", "sleep infinity"], env: {}, stdin: false, subscribe: false, window: 0 });
    await driver.pause({ id: "a4", dir });
    const image = new CheckpointImage(join(dir, "a4-image"));
    await driver.checkpoint({ id: "a4", dir }, image);
    await agent.drained(500);
    expect(agent.closed).toBe(true);
    expect(await driver.observe({ id: "a4", dir })).toBe("stopped");
    await expect(driver.restore(spec("a5"), image)).rejects.toThrow(/no complete checkpoint/);
    image.commit();
    const restored = await driver.restore(spec("a5"), image);
    const clone = new AgentClient(restored.channel, log);
    clients.push(clone);
    await clone.waitReady(1_000);
    expect((await exec(clone, "incr")).output).toBe("3\n");
    const { processes } = await clone.ps();
    expect(processes.find((p) => p.pid === bg.pid)?.running).toBe(true);
    expect(host.ids()).toEqual(["a5"]);
  });

  it("declares its capabilities; a crash point never settles, nor does anything after it", async () => {
    const host = new FakeHost();
    const crun = new FakeDriver(host, { name: "crun", checkpoint: false });
    expect([canPause(crun), canCheckpoint(crun)]).toEqual([true, false]);
    const driver = new FakeDriver(host);
    expect(canCheckpoint(driver)).toBe(true);
    driver.failNext("launch", new Error("nope"));
    await expect(driver.launch(spec("a6"))).rejects.toThrow("nope");
    const crashed = driver.crashAt("launch", { after: true });
    let settled = false;
    void driver.launch(spec("a6")).finally(() => (settled = true));
    await crashed;
    void driver.observe({ id: "a6", dir }).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    expect(host.observe("a6")).toBe("running");
    host.reboot();
  });
});
