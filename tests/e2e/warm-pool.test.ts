import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DaemonInfoSchema } from "@stasis/protocol";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

/** Warm pools on real gVisor: frozen, already booted sandboxes handed out by create. */
describe("warm pool", () => {
  let daemon: TestDaemon;

  async function pool(): Promise<{ ready: number; booting: number }> {
    const res = await fetch(`${daemon.url}/v1/info`, { headers: { Authorization: `Bearer ${daemon.apiKey}` } });
    const info = DaemonInfoSchema.parse(await res.json());
    return info.warmPools.find((p) => p.template === "base") ?? { ready: 0, booting: 0 };
  }

  async function poolReady(n: number): Promise<void> {
    const deadline = Date.now() + 60_000;
    while ((await pool()).ready < n) {
      if (Date.now() > deadline) throw new Error(`warm pool never reached ${n} ready: ${JSON.stringify(await pool())}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  beforeAll(async () => {
    daemon = await startTestDaemon({ STASIS_WARM_POOL: "base=1" });
  });
  afterAll(async () => {
    await daemon?.destroy();
  });

  it("hands out a booted sandbox with the request's settings, hides members from lists, and refills", async () => {
    await poolReady(1);
    expect((await Sandbox.list({}, daemon.conn)).sandboxes).toEqual([]);
    const started = performance.now();
    const s = await Sandbox.create({ env: { GREETING: "warm" }, metadata: { via: "pool" }, timeoutMs: 120_000, ...daemon.conn });
    const ms = performance.now() - started;
    expect(s.info).toMatchObject({ createdVia: "warm_pool", state: "running", metadata: { via: "pool" }, timeoutMs: 120_000, standbyReason: null });
    // Handing over a frozen sandbox is a thaw and a row update: far below a boot (~400 ms here).
    expect(ms).toBeLessThan(250);
    expect((await s.commands.run("echo $GREETING from $(hostname)")).stdout).toBe("warm from sandbox\n");
    expect(Date.parse(s.info.expiresAt!) - Date.parse(s.info.createdAt)).toBe(120_000);
    expect((await Sandbox.list({}, daemon.conn)).sandboxes.map((x) => x.id)).toEqual([s.id]);
    // The pool fills up again behind it.
    await poolReady(1);
    // A shape the pool does not hold boots cold.
    const big = await Sandbox.create({ memoryMiB: 768, ...daemon.conn });
    expect(big.info.createdVia).toBe("cold");
    await Promise.all([s.kill(), big.kill()]);
  }, 120_000);

  it("keeps its frozen members across a daemon crash, and discards them on a graceful stop", async () => {
    await poolReady(1);
    await daemon.stop("SIGKILL");
    await daemon.restart();
    expect((await pool()).ready).toBe(1);
    const s = await Sandbox.create(daemon.conn);
    expect(s.info.createdVia).toBe("warm_pool");
    expect((await s.commands.run("echo alive")).stdout).toBe("alive\n");
    await s.kill();
    await poolReady(1);
    await daemon.stop("SIGTERM");
    await daemon.restart();
    // Discarded at the stop (not hibernated: nobody owns them), rebuilt after the start.
    expect((await pool()).ready).toBe(0);
    await poolReady(1);
  }, 180_000);
});
