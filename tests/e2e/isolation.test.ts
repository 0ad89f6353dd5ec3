import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

// What a hostile sandbox must not be able to do, on every runtime.
describe.each(["gvisor", "crun"] as const)("isolation on %s", (runtime) => {
  let daemon: TestDaemon;
  let a: Sandbox;
  let b: Sandbox;
  const secret = `/tmp/stasis-host-secret-${process.pid}-${runtime}`;

  beforeAll(async () => {
    writeFileSync(secret, "host-secret-contents\n");
    daemon = await startTestDaemon();
    [a, b] = await Promise.all([Sandbox.create({ runtime, ...daemon.conn }), Sandbox.create({ runtime, ...daemon.conn })]);
  });
  afterAll(async () => {
    rmSync(secret, { force: true });
    await Promise.all([a, b].map((s) => s?.kill().catch(() => {})));
    await daemon?.destroy();
  });

  it("cannot read host files", async () => {
    const r = await a.commands.run(`cat ${secret}; cat /proc/1/root${secret}; grep -r host-secret-contents /tmp /proc/1/root/tmp 2>/dev/null; echo end`);
    expect(r.stdout).not.toContain("host-secret-contents");
    const hostname = await a.commands.run("hostname");
    expect(hostname.stdout.trim()).toBe("sandbox");
  });

  it("opens no device node found in its files (a template's layers may carry any)", async () => {
    // As if an imported image had shipped it: /dev/zero's numbers, put into the sandbox's disk from the host.
    const name = `devnode-${runtime}-${process.pid}`;
    execFileSync("mknod", [`${daemon.dataDir}/sandboxes/${a.id}/disk/upper/${name}`, "c", "1", "5"]);
    const r = await a.commands.run(`ls -l /${name} >/dev/null && head -c 4 /${name} | wc -c`);
    expect(r.stdout.trim()).not.toBe("4");
    expect(r.exitCode === 0 && r.stdout.trim() === "4").toBe(false);
  });

  it("cannot reach the daemon's API or any host address", async () => {
    const port = new URL(daemon.url).port;
    const script = `
import socket
for host in ["127.0.0.1", "10.0.2.2", "172.17.0.1", "169.254.169.254"]:
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect((host, ${port})); print("CONNECTED", host)
    except Exception as e:
        print("blocked", host, type(e).__name__)
    finally:
        s.close()
`;
    await a.files.write("/tmp/probe.py", script);
    const r = await a.commands.run("python3 /tmp/probe.py");
    expect(r.stdout).not.toContain("CONNECTED");
    expect(r.stdout.match(/blocked/g)).toHaveLength(4);
  });

  it("cannot see another sandbox's files or processes", async () => {
    await a.files.write("/tmp/a-only.txt", "mine");
    const marker = `sleep 4242${runtime === "gvisor" ? 1 : 2}`;
    await a.commands.start(marker);
    const r = await b.commands.run("ls /tmp; ps ax -o args");
    expect(r.stdout).not.toContain("a-only.txt");
    expect(r.stdout).not.toContain(marker);
    expect(await b.files.exists("/tmp/a-only.txt")).toBe(false);
  });

  it("a memory hog hits its own limit, and the daemon and other sandboxes keep serving", async () => {
    const hog = await Sandbox.create({ runtime, memoryMiB: 128, ...daemon.conn });
    try {
      const outcome = await hog.commands
        .run(`python3 -c "b = bytearray(600 * 1024 * 1024); print('allocated', len(b))"`, { timeoutMs: 60_000 })
        .then((r) => ({ exitCode: r.exitCode, stdout: r.stdout }))
        .catch((err: { code?: string }) => ({ error: err.code }));
      // crun: the kernel OOM-kills just the process (137). gVisor: the whole offending sandbox is killed.
      expect(JSON.stringify(outcome)).not.toContain("allocated");
      if ("exitCode" in outcome) expect(outcome.exitCode).toBe(137);
      else {
        expect(outcome.error).toBe("sandbox_failed");
        expect((await hog.refresh()).state).toBe("failed");
        // gVisor cannot kill just the process (docs/ARCHITECTURE.md, "Hostile sandboxes"): the reason says why.
        expect(runtime).toBe("gvisor");
        await expect.poll(async () => (await hog.refresh()).stateReason, { timeout: 5000 }).toMatch(/most likely its memory limit of 128 MiB was exceeded \(the kernel OOM-killed it\)/);
      }
      expect((await b.commands.run("echo still-here")).stdout).toBe("still-here\n");
    } finally {
      await hog.kill().catch(() => {});
    }
  });

  // The bomb's forks fail inside (crun: the kernel's pids cgroup; gVisor: the RLIMIT_NPROC the agent gives
  // commands, since the host limit also counts the sentry's own tasks and would kill the sandbox) while the
  // agent, exempt, lives on and still starts commands.
  it("a fork bomb's forks fail inside its sandbox: the agent lives, a neighbour stays fast, commands run again", async () => {
    const bomb = await Sandbox.create({ runtime, memoryMiB: 256, ...daemon.conn });
    try {
      await bomb.commands.run("bomb() { bomb | bomb & }; bomb 2>>/tmp/bomb.err; sleep 3", { timeoutMs: 15_000 }).catch(() => {});
      const started = Date.now();
      expect((await b.commands.run("echo still-here")).stdout).toBe("still-here\n");
      expect(Date.now() - started).toBeLessThan(10_000);
      expect((await fetch(`${daemon.url}/healthz`)).status).toBe(200);
      // `kill` is a builtin of the agent's warm shell: it needs no fork while the limit is reached.
      await vi.waitFor(async () => {
        await bomb.commands.run("kill -9 -1", { timeoutMs: 10_000 }).catch(() => {});
        expect((await bomb.commands.run("echo survived", { timeoutMs: 10_000 })).stdout).toBe("survived\n");
      }, { timeout: 60_000, interval: 1_000 });
      expect((await bomb.commands.run("grep -cE 'Resource temporarily unavailable|Cannot fork' /tmp/bomb.err")).stdout.trim()).not.toBe("0");
      expect((await bomb.refresh()).state).toBe("running");
    } finally {
      await bomb.kill().catch(() => {});
    }
  });

  // On gVisor the host's pids limit used to count the sentry's tasks too: 241 of these killed the sandbox.
  it("300 background processes all start and the sandbox lives", async () => {
    const many = await Sandbox.create({ runtime, ...daemon.conn });
    try {
      const r = await many.commands.run("n=0; for i in $(seq 300); do sleep 100 & n=$((n+1)); done; echo started=$n", { timeoutMs: 60_000 });
      expect(r.stdout).toBe("started=300\n");
      expect((await many.commands.run("echo alive", { timeoutMs: 10_000 })).stdout).toBe("alive\n");
      expect((await many.refresh()).state).toBe("running");
    } finally {
      await many.kill().catch(() => {});
    }
  });

  it("a disk filler hits its own quota, not the host's disk", async () => {
    const filler = await Sandbox.create({ runtime, diskMiB: 256, ...daemon.conn });
    try {
      const r = await filler.commands.run("dd if=/dev/zero of=/root/fill bs=1M count=400 2>&1; echo rc=$?", { timeoutMs: 60_000 });
      expect(r.stdout).toMatch(/No space left on device/);
      expect((await b.commands.run("echo still-here")).stdout).toBe("still-here\n");
    } finally {
      await filler.kill().catch(() => {});
    }
  });
});
