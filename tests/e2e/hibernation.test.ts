import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NotSupportedByRuntimeError, Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

/**
 * A process holding a counter and 50 MB of random data. It writes `count digest` every 50 ms; touching
 * /tmp/verify makes it hash its data again and write the result to /tmp/verified, which proves the
 * bytes in memory are the ones it started with.
 */
const WORKER = `
import hashlib, os, time
data = bytearray(os.urandom(50 * 1024 * 1024))
digest = hashlib.sha256(data).hexdigest()
n = 0
def put(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
while True:
    n += 1
    put("/tmp/state", f"{n} {digest}")
    if os.path.exists("/tmp/verify"):
        os.remove("/tmp/verify")
        put("/tmp/verified", hashlib.sha256(data).hexdigest())
    time.sleep(0.05)
`;

interface WorkerState {
  count: number;
  digest: string;
}

async function readState(s: Sandbox): Promise<WorkerState> {
  const [count, digest] = (await s.files.readText("/tmp/state")).trim().split(" ");
  return { count: Number(count), digest: digest ?? "" };
}

async function startWorker(s: Sandbox): Promise<{ pid: number; state: WorkerState }> {
  await s.files.write("/root/worker.py", WORKER);
  const { pid } = await s.commands.start("exec python3 /root/worker.py");
  await expect.poll(async () => (await readState(s).catch(() => ({ count: 0 }))).count, { timeout: 20_000 }).toBeGreaterThan(10);
  return { pid, state: await readState(s) };
}

/** The worker is the same process, it counted on from where it was, and its 50 MB are unchanged. */
async function expectWorkerIntact(s: Sandbox, pid: number, before: WorkerState): Promise<WorkerState> {
  const after = await readState(s);
  expect(after.digest).toBe(before.digest);
  expect(after.count).toBeGreaterThanOrEqual(before.count);
  await expect.poll(async () => (await readState(s)).count, { timeout: 5000 }).toBeGreaterThan(after.count);
  expect((await s.commands.list()).find((p) => p.pid === pid)?.running).toBe(true);
  await s.files.remove("/tmp/verified").catch(() => {});
  await s.files.write("/tmp/verify", "");
  await expect.poll(async () => (await s.files.readText("/tmp/verified").catch(() => "")).trim(), { timeout: 10_000 }).toBe(before.digest);
  return readState(s);
}

describe("hibernation on gvisor", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon?.destroy();
  });

  it("lets a command in flight finish before it hibernates", async () => {
    const sandbox = await Sandbox.create({ idleTimeoutMs: 0, ...daemon.conn });
    const result = sandbox.commands.run("sleep 1; echo done", { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 300));
    expect((await sandbox.hibernate()).state).toBe("hibernated");
    expect(await result).toMatchObject({ exitCode: 0, stdout: "done\n", timedOut: false });
    await sandbox.kill();
  });

  // The agent's channel is a pair of host pipes that a checkpoint does not keep: what the agent had not
  // read yet is gone after a wake. An agent checkpointed halfway through a message (a daemon that died
  // mid-write, a resync's padding still arriving) must still answer the next daemon's first request.
  it.each([
    ["a line", Buffer.from('{"id":12,"op":"sta')],
    ["a frame", Buffer.concat([Buffer.from([0, 0, 0, 0x03, 0xe8, 0, 0x10, 0, 0]), Buffer.from('{"id":13,"op":"write_chunk"')])],
  ])("wakes when checkpointed halfway through reading %s, the rest of it lost", async (_what, torn) => {
    const sandbox = await Sandbox.create({ idleTimeoutMs: 0, ...daemon.conn });
    await sandbox.files.write("/root/kept.txt", "kept");
    writeFileSync(`${daemon.dataDir}/sandboxes/${sandbox.id}/runtime/agent.in`, torn);
    expect((await sandbox.hibernate()).state).toBe("hibernated");
    expect((await sandbox.commands.run("cat /root/kept.txt")).stdout).toBe("kept");
    expect((await sandbox.refresh()).state).toBe("running");
    await sandbox.kill();
  });

  it("keeps a process's counter and 50 MB across pause, hibernate and daemon restarts", async () => {
    let sandbox = await Sandbox.create({ idleTimeoutMs: 0, ...daemon.conn });
    const { pid, state } = await startWorker(sandbox);
    let last = state;

    await sandbox.pause();
    await new Promise((r) => setTimeout(r, 300));
    expect((await sandbox.resume()).state).toBe("running");
    last = await expectWorkerIntact(sandbox, pid, last);

    const hibernated = await sandbox.hibernate();
    expect(hibernated).toMatchObject({ state: "hibernated", expiresAt: null });
    expect(hibernated.standbySince).not.toBeNull();
    // A plain request wakes it.
    last = await expectWorkerIntact(sandbox, pid, last);
    expect((await sandbox.refresh()).state).toBe("running");

    // Crash: the daemon is killed, the sandbox keeps running and is reattached.
    await daemon.stop("SIGKILL");
    await daemon.restart();
    sandbox = await Sandbox.connect(sandbox.id, daemon.conn);
    expect(sandbox.info.state).toBe("running");
    last = await expectWorkerIntact(sandbox, pid, last);

    // Graceful stop: the daemon hibernates it, and the next request after the restart wakes it.
    await daemon.stop("SIGTERM");
    await daemon.restart();
    sandbox = await Sandbox.connect(sandbox.id, daemon.conn);
    expect(sandbox.info.state).toBe("hibernated");
    last = await expectWorkerIntact(sandbox, pid, last);

    // A crash while it is hibernated loses nothing either.
    await sandbox.hibernate();
    await daemon.stop("SIGKILL");
    await daemon.restart();
    sandbox = await Sandbox.connect(sandbox.id, daemon.conn);
    expect(sandbox.info.state).toBe("hibernated");
    await expectWorkerIntact(sandbox, pid, last);
    await sandbox.kill();
  });

  it("reads back files written before hibernation byte for byte", async () => {
    const sandbox = await Sandbox.create({ idleTimeoutMs: 0, ...daemon.conn });
    const payload = randomBytes(4 * 1024 * 1024);
    await sandbox.files.write("/root/data/blob.bin", payload);
    const made = await sandbox.commands.run("head -c 3000000 /dev/urandom > /tmp/made.bin && sha256sum /tmp/made.bin | cut -d' ' -f1");
    await sandbox.hibernate();
    const back = await sandbox.files.read("/root/data/blob.bin");
    expect(Buffer.from(back).equals(payload)).toBe(true);
    const again = await sandbox.commands.run("sha256sum /tmp/made.bin | cut -d' ' -f1");
    expect(again.stdout).toBe(made.stdout);
    expect(createHash("sha256").update(await sandbox.files.read("/tmp/made.bin")).digest("hex")).toBe(made.stdout.trim());
    await sandbox.kill();
  });

  it("forks a running sandbox into independent copies while the source carries on", async () => {
    const source = await Sandbox.create({ idleTimeoutMs: 0, metadata: { role: "source" }, ...daemon.conn });
    const { pid, state } = await startWorker(source);
    await source.files.write("/root/who", "source");
    const clones = await source.fork(2);
    expect(clones).toHaveLength(2);
    for (const clone of clones) {
      expect(clone.info).toMatchObject({ state: "running", forkedFrom: source.id, metadata: { role: "source" } });
      expect(clone.id).not.toBe(source.id);
    }
    expect((await source.refresh()).state).toBe("running");
    // Every copy goes on from the same memory and files...
    for (const s of [source, ...clones]) {
      await expectWorkerIntact(s, pid, state);
      expect(await s.files.readText("/root/who")).toBe("source");
    }
    // ...and then diverges on its own.
    await Promise.all(clones.map((c, i) => c.files.write("/root/who", `clone ${i}`)));
    await clones[0]!.commands.run("kill " + String(pid));
    expect(await source.files.readText("/root/who")).toBe("source");
    expect(await clones[1]!.files.readText("/root/who")).toBe("clone 1");
    expect((await clones[1]!.commands.list()).find((p) => p.pid === pid)?.running).toBe(true);
    expect((await source.commands.list()).find((p) => p.pid === pid)?.running).toBe(true);
    await clones[0]!.kill();
    expect((await clones[1]!.commands.run("cat /root/who")).stdout).toBe("clone 1");
    await Promise.all([source.kill(), clones[1]!.kill()]);
  });

  it("forks a paused sandbox and leaves it paused", async () => {
    const source = await Sandbox.create({ idleTimeoutMs: 0, ...daemon.conn });
    await source.files.write("/root/mark", "m");
    await source.pause();
    const [clone] = await source.fork();
    expect((await source.refresh()).state).toBe("paused");
    expect(await clone!.files.readText("/root/mark")).toBe("m");
    await Promise.all([source.kill(), clone!.kill()]);
  });

  it("pauses an idle sandbox, hibernates it later, and a plain exec wakes it", async () => {
    const sandbox = await Sandbox.create({ idleTimeoutMs: 1000, hibernateAfterMs: 1500, ...daemon.conn });
    await sandbox.commands.run("echo before > /root/before");
    // A foreground command keeps it awake, however long it runs.
    const long = await sandbox.commands.run("sleep 2.5; echo done");
    expect(long.stdout).toBe("done\n");
    await expect.poll(async () => (await sandbox.refresh()).state, { timeout: 10_000, interval: 200 }).toBe("paused");
    expect(sandbox.info.stateReason).toMatch(/idle/);
    await expect.poll(async () => (await sandbox.refresh()).state, { timeout: 20_000, interval: 200 }).toBe("hibernated");
    const r = await sandbox.commands.run("cat /root/before");
    expect(r.stdout).toBe("before\n");
    expect((await sandbox.refresh()).state).toBe("running");
    await sandbox.kill();
  });

  it("never pauses a sandbox whose automatic standby is off, and can turn it on later", async () => {
    const sandbox = await Sandbox.create({ idleTimeoutMs: 0, ...daemon.conn });
    await new Promise((r) => setTimeout(r, 2500));
    expect((await sandbox.refresh()).state).toBe("running");
    const updated = await sandbox.setStandbyPolicy({ idleTimeoutMs: 1000, hibernateAfterMs: 0 });
    expect(updated).toMatchObject({ idleTimeoutMs: 1000, hibernateAfterMs: 0 });
    await expect.poll(async () => (await sandbox.refresh()).state, { timeout: 10_000, interval: 200 }).toBe("paused");
    await new Promise((r) => setTimeout(r, 2500));
    expect((await sandbox.refresh()).state).toBe("paused"); // hibernation is off
    await sandbox.kill();
  });
});

describe("standby limits on crun", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon?.destroy();
  });

  it("says with a stable code that crun cannot hibernate or fork, and keeps it paused instead", async () => {
    const sandbox = await Sandbox.create({ runtime: "crun", idleTimeoutMs: 1000, hibernateAfterMs: 1000, ...daemon.conn });
    await expect(sandbox.hibernate()).rejects.toBeInstanceOf(NotSupportedByRuntimeError);
    await expect(sandbox.fork(1)).rejects.toMatchObject({ code: "not_supported_by_runtime", status: 409 });
    expect((await sandbox.refresh()).state).toBe("running");
    await expect.poll(async () => (await sandbox.refresh()).state, { timeout: 10_000, interval: 200 }).toBe("paused");
    await new Promise((r) => setTimeout(r, 2500));
    expect((await sandbox.refresh()).state).toBe("paused");
    expect((await sandbox.commands.run("echo up")).stdout).toBe("up\n");
    await sandbox.setStandbyPolicy({ idleTimeoutMs: 0 });
    // A graceful stop leaves crun sandboxes running; they are reattached.
    await daemon.stop("SIGTERM");
    await daemon.restart();
    expect((await Sandbox.connect(sandbox.id, daemon.conn)).info.state).toBe("running");
    await Sandbox.kill(sandbox.id, daemon.conn);
  });
});
