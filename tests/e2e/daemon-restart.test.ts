import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { networkTag, startTestDaemon, type TestDaemon } from "./harness.js";

describe("daemon restart", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon?.destroy();
  });

  // A graceful stop hibernates gVisor sandboxes; a crash leaves them running to be reattached.
  it.each([
    ["SIGTERM", "hibernated"],
    ["SIGKILL", "running"],
  ] as const)("keeps sandboxes after %s (%s), processes and files intact", async (signal, stateAfter) => {
    const sandbox = await Sandbox.create({ idleTimeoutMs: 0, ...daemon.conn });
    await sandbox.files.write("/root/kept.txt", "still here");
    const counter = await sandbox.commands.start("i=0; while true; do i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; sleep 0.1; done");
    // The loop has run once (the start replies before the command's first step): the file exists to be read after.
    await expect.poll(() => sandbox.files.exists("/tmp/counter"), { timeout: 10_000 }).toBe(true);

    await daemon.stop(signal);
    // A stop's hibernation does not keep the network as other hibernations do for a while: nothing would end it.
    expect(sandbox.info.network).not.toBeNull();
    expect(existsSync(`/var/run/netns/stasis-${networkTag(daemon.dataDir)}-${sandbox.id}`)).toBe(signal === "SIGKILL");
    await daemon.restart();

    const again = await Sandbox.connect(sandbox.id, daemon.conn);
    expect(again.info.state).toBe(stateAfter);
    expect(await again.files.readText("/root/kept.txt")).toBe("still here");
    expect((await again.refresh()).state).toBe("running");
    const processes = await again.commands.list();
    expect(processes.find((p) => p.pid === counter.pid)?.running).toBe(true);
    const first = Number((await again.files.readText("/tmp/counter")).trim());
    await new Promise((r) => setTimeout(r, 400));
    const second = Number((await again.files.readText("/tmp/counter")).trim());
    expect(second).toBeGreaterThan(first);
    await again.kill();
  });

  it("a start that fails (its port taken) exits with 1, saying why, with its disk pool unmounted and its data folder free", async () => {
    await daemon.stop("SIGTERM");
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    try {
      const port = String((taken.address() as AddressInfo).port);
      // The pool mounts its disks before the daemon listens: the failed start must take them down again.
      await expect(daemon.restart({ STASIS_PORT: port, STASIS_DISK_POOL: "2" })).rejects.toThrow(/daemon exited with 1[\s\S]*EADDRINUSE/);
    } finally {
      taken.close();
    }
    const mounted = readFileSync("/proc/self/mounts", "utf8").split("\n").filter((l) => l.split(" ")[1]?.startsWith(daemon.dataDir));
    expect(mounted).toEqual([]);
    // The data folder's lock went with it: the next start comes up.
    await daemon.restart();
    expect((await fetch(`${daemon.url}/healthz`)).status).toBe(200);
  });

  it("marks a sandbox whose runtime vanished while the daemon was down as failed, with the reason, and keeps its files readable", async () => {
    const sandbox = await Sandbox.create({ ...daemon.conn });
    await sandbox.files.write("/root/notes/kept.txt", "still readable");
    await sandbox.commands.run("ln -s /root/notes/kept.txt /root/link");
    await daemon.stop("SIGKILL");
    // Simulate a host reboot for this sandbox: its runtime is gone, its record is not.
    const { execFileSync } = await import("node:child_process");
    execFileSync("runsc", ["--root", `${daemon.env.STASIS_RUN_DIR}/runsc`, "kill", sandbox.id, "KILL"]);
    await new Promise((r) => setTimeout(r, 500));
    await daemon.restart();
    const failed = await Sandbox.connect(sandbox.id, daemon.conn);
    expect(failed.info.state).toBe("failed");
    expect(failed.info.stateReason).toMatch(/not running when the daemon restarted/);
    // Nothing is deleted on the daemon's judgement: the files stay, read-only, until the user deletes it.
    expect(await failed.files.readText("/root/link")).toBe("still readable");
    expect((await failed.files.list("/root/notes")).entries.map((e) => e.name)).toEqual(["kept.txt"]);
    await expect(failed.files.write("/root/new.txt", "x")).rejects.toMatchObject({ code: "sandbox_not_running" });
    await Sandbox.kill(sandbox.id, daemon.conn);
    await expect(Sandbox.connect(sandbox.id, daemon.conn)).rejects.toMatchObject({ code: "sandbox_not_found" });
  });

  it("a crash's restart removes the namespaces hibernated sandboxes kept, and a wake makes one anew", async () => {
    const sandboxes = await Promise.all(Array.from({ length: 10 }, () => Sandbox.create({ idleTimeoutMs: 0, ...daemon.conn })));
    for (const s of sandboxes) await s.hibernate();
    const netns = (s: Sandbox) => `/var/run/netns/stasis-${networkTag(daemon.dataDir)}-${s.id}`;
    // Kept while they sleep (10 min by default), so that a wake soon after skips making them.
    expect(sandboxes.filter((s) => !existsSync(netns(s)))).toEqual([]);
    await daemon.stop("SIGKILL");
    await daemon.restart();
    expect(sandboxes.filter((s) => existsSync(netns(s))).map((s) => s.id)).toEqual([]);
    // The restarted daemon listens on a new port: connect again.
    const woken = await Sandbox.connect(sandboxes[0]!.id, daemon.conn);
    expect((await woken.commands.run("echo back")).stdout).toBe("back\n");
    expect(existsSync(netns(woken))).toBe(true);
    for (const s of sandboxes) await Sandbox.kill(s.id, daemon.conn);
  });
});
