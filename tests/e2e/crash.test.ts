import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Sandbox, type SandboxInfo } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

// `kill -9` of the daemon at each step of each transition (the daemon's STASIS_CRASH_AT hook kills it at a
// named point, so no sleep decides where it dies), then a restart. Per sandbox: recovered with the same
// processes, memory and files. Nothing handed to a client is ever lost.

const COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; sleep 0.05; done";
// For 20 sandboxes at once: at 20 steps a second (two processes each), they would hold a 2-core host's
// load near 60, which tests the host's scheduler rather than the daemon's recovery.
const SLOW_COUNTER = COUNTER.replace("sleep 0.05", "sleep 0.5");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface CrashCase {
  point: string;
  gvisorOnly?: boolean;
  /** Brings the sandbox to the state the transition starts from. */
  prepare?: (s: Sandbox) => Promise<unknown>;
  act: (s: Sandbox) => Promise<unknown>;
  /** Checks beyond "processes, memory and files intact". */
  check?: (s: Sandbox) => Promise<void>;
}

const cases: CrashCase[] = [
  { point: "pause.frozen", act: (s) => s.pause() },
  { point: "resume.thawed", prepare: (s) => s.pause(), act: (s) => s.resume() },
  { point: "hibernate.writing", gvisorOnly: true, act: (s) => s.hibernate() },
  { point: "hibernate.written", gvisorOnly: true, act: (s) => s.hibernate() },
  { point: "wake.restored", gvisorOnly: true, prepare: (s) => s.hibernate(), act: (s) => s.resume() },
  // Between the sandbox's new namespace and its runtime: the namespace is left over, the sandbox asleep.
  { point: "network.attached", gvisorOnly: true, prepare: (s) => s.hibernate(), act: (s) => s.resume() },
  {
    point: "fork.copying",
    gvisorOnly: true,
    act: (s) => s.fork(2),
    // The source's filesystem was frozen for the copy: a write must not hang after the restart.
    check: async (s) => {
      await s.files.write("/root/after-fork.txt", "written");
      expect(await s.files.readText("/root/after-fork.txt")).toBe("written");
    },
  },
  { point: "fork.restored", gvisorOnly: true, act: (s) => s.fork(2) },
  {
    point: "upload.partial",
    act: (s) => s.files.write("/root/upload.bin", Buffer.alloc(8 << 20, 7)),
    // An upload is atomic: the torn one left no file behind.
    check: async (s) => {
      const r = await s.commands.run("test -e /root/upload.bin && echo present || echo absent");
      expect(r.stdout.trim()).toBe("absent");
    },
  },
];

async function counter(s: Sandbox): Promise<number> {
  return Number((await s.files.readText("/tmp/counter")).trim());
}

/** The counter once the loop has written it (its start replies before its first step). */
function counting(s: Sandbox): Promise<number> {
  return vi.waitFor(() => counter(s), { timeout: 10_000, interval: 50 });
}

/** The sandbox came back with its processes (the same pid, still counting from where it was) and files. */
async function expectIntact(daemon: TestDaemon, id: string, pid: number, before: number): Promise<SandboxInfo> {
  try {
    return await checkIntact(daemon, id, pid, before);
  } catch (err) {
    // What the daemon said about this sandbox tells why: kept with the failure.
    const said = daemon.logs.filter((l) => l.includes(id)).slice(-15).join("\n");
    let agent = "";
    try {
      agent = execFileSync("sh", ["-c", `tail -n 20 ${daemon.dataDir}/*/${id}/runtime/runtime.log`]).toString();
    } catch {
      agent = "(no runtime log)";
    }
    throw new Error(`${(err as Error).message}\n--- daemon log lines of ${id}:\n${said}\n--- its runtime log:\n${agent}`, { cause: err });
  }
}

async function checkIntact(daemon: TestDaemon, id: string, pid: number, before: number): Promise<SandboxInfo> {
  const s = await Sandbox.connect(id, daemon.conn);
  const info = s.info;
  expect(["running", "paused", "hibernated", "hibernating"], `${id}: ${info.state} (${info.stateReason})`).toContain(info.state);
  expect(await s.files.readText("/root/kept.txt")).toBe("kept");
  expect((await s.commands.list()).find((p) => p.pid === pid)?.running).toBe(true);
  const first = await counter(s);
  expect(first).toBeGreaterThanOrEqual(before);
  // Still counting (a restarted process would have begun again at 1). The host may be busy settling others.
  await vi.waitFor(async () => expect(await counter(s)).toBeGreaterThan(first), { timeout: 10_000, interval: 200 });
  return info;
}

describe.each(["gvisor", "crun"] as const)("kill -9 of the daemon mid-transition on %s", (runtime) => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon?.destroy();
  });

  for (const c of cases.filter((x) => runtime === "gvisor" || !x.gvisorOnly)) {
    it(`at ${c.point}: recovered with its processes, memory and files`, async () => {
      const s = await Sandbox.create({ runtime, idleTimeoutMs: 0, ...daemon.conn });
      await s.files.write("/root/kept.txt", "kept");
      const { pid } = await s.commands.start(COUNTER);
      await sleep(200);
      const before = await counting(s);
      await c.prepare?.(s);

      await daemon.stop("SIGKILL");
      await daemon.restart({ STASIS_CRASH_AT: c.point });
      const during = await Sandbox.connect(s.id, daemon.conn);
      const acting = c.act(during).then(
        () => null,
        (err: Error) => err,
      );
      await daemon.exited();
      expect(await acting, "the request died with the daemon").toBeInstanceOf(Error);
      expect(daemon.logs.some((l) => l.includes(`kills itself at ${c.point}`))).toBe(true);

      await daemon.restart();
      const info = await expectIntact(daemon, s.id, pid, before);
      expect(info.stateReason ?? "").not.toMatch(/failed/);
      await c.check?.(await Sandbox.connect(s.id, daemon.conn));
      // Clones of a fork that never answered are failed and hold nothing.
      const { sandboxes } = await Sandbox.list({ limit: 100 }, daemon.conn);
      for (const clone of sandboxes.filter((x) => x.forkedFrom === s.id)) {
        expect(clone.state).toBe("failed");
        await Sandbox.kill(clone.id, daemon.conn);
      }
      await Sandbox.kill(s.id, daemon.conn);
    });
  }

  it("at create.launched: the create that never answered is failed and removed, nothing else touched", async () => {
    const other = await Sandbox.create({ runtime, idleTimeoutMs: 0, ...daemon.conn });
    await daemon.stop("SIGKILL");
    await daemon.restart({ STASIS_CRASH_AT: "create.launched" });
    const creating = Sandbox.create({ runtime, ...daemon.conn }).then(
      () => null,
      (err: Error) => err,
    );
    await daemon.exited();
    expect(await creating).toBeInstanceOf(Error);
    await daemon.restart();
    const { sandboxes } = await Sandbox.list({ limit: 100 }, daemon.conn);
    const lost = sandboxes.filter((x) => x.id !== other.id);
    expect(lost.map((x) => [x.state, x.stateReason])).toEqual([["failed", "daemon stopped while the sandbox was creating"]]);
    for (const x of lost) await Sandbox.kill(x.id, daemon.conn);
    const again = await Sandbox.connect(other.id, daemon.conn);
    expect((await again.commands.run("echo alive")).stdout).toBe("alive\n");
    await again.kill();
  });
});

describe("restart with 20 gVisor sandboxes in flight", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon?.destroy();
  });

  it("settles them all in under 5 s of its start-up and loses none of them", async () => {
    const sandboxes = await Promise.all(Array.from({ length: 20 }, () => Sandbox.create({ idleTimeoutMs: 0, ...daemon.conn })));
    const pids = new Map<string, number>();
    for (const s of sandboxes) {
      await s.files.write("/root/kept.txt", "kept");
      pids.set(s.id, (await s.commands.start(SLOW_COUNTER)).pid);
    }
    await sleep(200);
    const before = new Map<string, number>();
    for (const s of sandboxes) before.set(s.id, await counting(s));
    await daemon.stop("SIGKILL");
    await daemon.restart({ STASIS_CRASH_AT: "hibernate.written" });
    // Every sandbox is hibernating at once; the first to have its image written kills the daemon.
    const inFlight = sandboxes.map((s) => Sandbox.connect(s.id, daemon.conn).then((x) => x.hibernate()).catch(() => null));
    await daemon.exited();
    await Promise.all(inFlight);
    const started = performance.now();
    const logged = daemon.logs.length;
    await daemon.restart();
    const restartMs = performance.now() - started;
    if (process.env.STASIS_CRASH_LOG) writeFileSync(process.env.STASIS_CRASH_LOG, daemon.logs.slice(logged).join("\n"));
    // The daemon's own start-up work (store, network, settling every sandbox) is what must not wait on
    // sandboxes; the process's start before it (Node loading its modules) is the loaded host's.
    const listening = daemon.logs.slice(logged).find((l) => l.includes("stasis daemon listening"));
    const phases = (JSON.parse(listening ?? "{}") as { phasesMs?: Record<string, number> }).phasesMs ?? {};
    const ownMs = Object.values(phases).reduce((a, b) => a + b, 0);
    console.log(`restart with 20 sandboxes in flight: ${Math.round(restartMs)} ms, of which the daemon's start-up phases ${ownMs} ms`);
    expect(listening).toBeDefined();
    expect(ownMs).toBeLessThan(5_000);
    expect(restartMs).toBeLessThan(20_000);
    // Four at a time: most wake from hibernation (a restore each) on a small host.
    for (let i = 0; i < sandboxes.length; i += 4) {
      await Promise.all(sandboxes.slice(i, i + 4).map((s) => expectIntact(daemon, s.id, pids.get(s.id)!, before.get(s.id)!)));
    }
    for (const s of sandboxes) await Sandbox.kill(s.id, daemon.conn);
  }, 300_000);
});

describe("a late delete of a checkpointed incarnation (gvisor)", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    // The background `runsc delete` of each checkpointed incarnation held back 3 s, as a loaded host may.
    daemon = await startTestDaemon({ STASIS_TEST_DELETE_DELAY_MS: "3000" });
  });
  afterAll(async () => {
    await daemon?.destroy();
  });

  it("leaves the incarnation running by then alone: a fork's source and a woken sandbox live on", async () => {
    const s = await Sandbox.create({ runtime: "gvisor", idleTimeoutMs: 0, ...daemon.conn });
    await s.files.write("/root/kept.txt", "kept");
    const { pid } = await s.commands.start(COUNTER);
    const before = await counting(s);
    const [clone] = await s.fork(1);
    await s.hibernate();
    await s.resume();
    // Both deletes have come by now. runsc takes an id prefix: before, the late delete of the base id found
    // the incarnation running by then (`<id>-1`) and killed it (the source died, 137).
    await sleep(4_000);
    await expectIntact(daemon, s.id, pid, before);
    expect((await clone!.commands.run("cat /root/kept.txt")).stdout).toBe("kept");
    await Promise.all([s.kill(), clone!.kill()]);
  }, 120_000);
});
