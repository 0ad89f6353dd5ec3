// Smoke test of a running Stasis daemon on both runtimes, from the SDK, with a PASS/FAIL line per step;
// exits 1 when any step fails. vm-smoke.sh runs it in a fresh VM after ./scripts/up.sh; it runs on any
// host where up.sh has started the daemon:   node scripts/vm-smoke/smoke.mjs
// It kills the daemon (kill -9) and starts it again the way up.sh does, so do not point it at a daemon
// whose sandboxes matter. Environment: STASIS_API_URL / STASIS_API_KEY / STASIS_DATA_DIR (as the CLI),
// STASIS_SMOKE_PIDFILE (default /run/stasis/daemon.pid), STASIS_SMOKE_LOG (default /var/log/stasis.log),
// STASIS_SMOKE_RUNTIMES (default gvisor,crun).
import { Sandbox } from "@stasis/sdk";
import { spawn } from "node:child_process";
import { openSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { cgroupFacts, waitUntil } from "./smoke-host.mjs";

const runtimes = (process.env.STASIS_SMOKE_RUNTIMES ?? "gvisor,crun").split(",");
const pidFile = process.env.STASIS_SMOKE_PIDFILE ?? "/run/stasis/daemon.pid";
const logFile = process.env.STASIS_SMOKE_LOG ?? "/var/log/stasis.log";
const apiUrl = (process.env.STASIS_API_URL ?? `http://127.0.0.1:${process.env.STASIS_PORT ?? 7070}`).replace(/\/+$/, "");
const cliMain = fileURLToPath(new URL("../../packages/cli/dist/main.js", import.meta.url));
const MEMORY_MIB = 256;
const COUNTER = "n=0; while :; do n=$((n+1)); echo $n > /tmp/n; sleep 0.2; done";

const results = [];
async function step(name, fn) {
  const t0 = performance.now();
  let status = "PASS";
  let detail = "";
  try {
    detail = (await fn()) ?? "";
  } catch (err) {
    status = "FAIL";
    detail = String(err?.message ?? err).split("\n").slice(0, 3).join(" | ");
  }
  const ms = Math.round(performance.now() - t0);
  results.push({ name, status, ms, detail });
  const color = status === "PASS" ? "\x1b[32m" : "\x1b[31m";
  console.log(`${color}${status}\x1b[0m  ${name.padEnd(28)} ${String(ms).padStart(7)} ms  ${detail}`);
  return status === "PASS";
}
function skip(name, why) {
  results.push({ name, status: "SKIP", ms: 0, detail: why });
  console.log(`\x1b[33mSKIP\x1b[0m  ${name.padEnd(28)} ${"".padStart(7)}    ${why}`);
}
function expect(ok, message) {
  if (!ok) throw new Error(message);
}

/** The same long-running process, still counting: the sandbox kept its memory, not a reboot. */
async function counterAlive(sbx, pid) {
  const procs = await sbx.commands.list();
  expect(procs.some((p) => p.pid === pid && p.running), `counter pid ${pid} is not running (processes: ${procs.map((p) => `${p.pid}:${p.running}`).join(",")})`);
  const a = Number((await sbx.files.readText("/tmp/n")).trim());
  await new Promise((r) => setTimeout(r, 700));
  const b = Number((await sbx.files.readText("/tmp/n")).trim());
  expect(b > a, `counter does not advance (${a} then ${b})`);
  return b;
}

const payload = `smoke ${Date.now()} ${Math.random()}\n`.repeat(2000);
const sandboxes = new Map(); // runtime -> { sbx, counterPid }

async function runtimeSteps(runtime) {
  const tag = `${runtime}:`;
  const ok = await step(`${tag} create`, async () => {
    const sbx = await Sandbox.create({ runtime, memoryMiB: MEMORY_MIB, cpu: 1, idleTimeoutMs: 0, hibernateAfterMs: 0, timeoutMs: 30 * 60_000, metadata: { smoke: "vm" } });
    expect(sbx.info.runtime === runtime, `runtime is ${sbx.info.runtime}`);
    expect(sbx.info.state === "running", `state is ${sbx.info.state}`);
    sandboxes.set(runtime, { sbx, counterPid: 0 });
    return `${sbx.id} via ${sbx.info.createdVia ?? "?"}`;
  });
  if (!ok) {
    for (const s of ["exec", "files", "limits", "pause", "wake", "hibernate", "fork"]) skip(`${tag} ${s}`, "no sandbox");
    return;
  }
  const entry = sandboxes.get(runtime);
  const { sbx } = entry;

  await step(`${tag} exec`, async () => {
    const r = await sbx.commands.run("echo $((6*7)); uname -r");
    expect(r.exitCode === 0 && r.stdout.startsWith("42\n"), `echo gave exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`);
    const bad = await sbx.commands.run("exit 3");
    expect(bad.exitCode === 3, `exit 3 gave ${bad.exitCode}`);
    entry.counterPid = (await sbx.commands.start(COUNTER, { tag: "counter" })).pid;
    await waitUntil(async () => (await sbx.files.exists("/tmp/n")), 20_000, "the counter's /tmp/n");
    return `kernel inside: ${r.stdout.split("\n")[1]}; counter pid ${entry.counterPid}`;
  });

  await step(`${tag} files`, async () => {
    await sbx.files.write("/root/smoke.txt", payload);
    expect((await sbx.files.readText("/root/smoke.txt")) === payload, "read back differs from what was written");
    const list = await sbx.files.list("/root");
    expect(list.entries.some((e) => e.name === "smoke.txt"), "smoke.txt not listed in /root");
    const r = await sbx.commands.run("wc -c < /root/smoke.txt");
    expect(Number(r.stdout.trim()) === Buffer.byteLength(payload), `a command sees ${r.stdout.trim()} bytes`);
    return `${Buffer.byteLength(payload)} bytes round trip`;
  });

  await step(`${tag} limits`, async () => {
    const f = cgroupFacts(sbx.id);
    expect(f.memoryLimit === MEMORY_MIB * 1024 * 1024, `memory limit in ${f.dir} is ${f.memoryLimit}, want ${MEMORY_MIB} MiB`);
    expect(f.pidsLimit !== null && f.pidsLimit > 0, `no pids limit in ${f.dir}`);
    expect(f.hasProcesses, `no processes in ${f.dir}`);
    return `${f.mode} ${f.dir}: memory ${f.memoryLimit / 1048576} MiB, pids ${f.pidsLimit}, cpu ${f.cpuLimit}`;
  });

  await step(`${tag} pause`, async () => {
    const info = await sbx.pause();
    expect(info.state === "paused", `state is ${info.state}`);
    expect(cgroupFacts(sbx.id).frozen, "the cgroup is not frozen");
    const before = cgroupFacts(sbx.id).cpuUsec;
    await new Promise((r) => setTimeout(r, 1000));
    const after = cgroupFacts(sbx.id).cpuUsec;
    expect(before !== null && after === before, `CPU use moved while frozen (${before} -> ${after} us)`);
    return "frozen, no CPU for 1 s";
  });

  await step(`${tag} wake`, async () => {
    const n = await counterAlive(sbx, entry.counterPid);
    const info = await sbx.refresh();
    expect(info.state === "running", `state is ${info.state}`);
    expect(!cgroupFacts(sbx.id).frozen, "the cgroup is still frozen");
    return `counter at ${n}`;
  });

  if (runtime !== "gvisor") {
    skip(`${tag} hibernate`, "gVisor only (crun has no checkpoint)");
    skip(`${tag} fork`, "gVisor only");
    return;
  }

  await step(`${tag} hibernate`, async () => {
    const info = await sbx.hibernate();
    expect(info.state === "hibernated", `state is ${info.state}`);
    expect(!cgroupFacts(sbx.id).hasProcesses, "processes left in the sandbox's cgroup after hibernate");
    const t0 = performance.now();
    const n = await counterAlive(sbx, entry.counterPid);
    expect((await sbx.files.readText("/root/smoke.txt")) === payload, "files changed across hibernate");
    return `woke by a request; same counter process at ${n}; first request ${Math.round(performance.now() - t0)} ms`;
  });

  await step(`${tag} fork`, async () => {
    const [copy] = await sbx.fork(1);
    try {
      expect((await copy.files.readText("/root/smoke.txt")) === payload, "the fork's files differ");
      await counterAlive(copy, entry.counterPid);
      await copy.files.write("/root/only-in-fork", "x");
      expect(!(await sbx.files.exists("/root/only-in-fork")), "a write in the fork shows in the source");
      await counterAlive(sbx, entry.counterPid);
      return `${copy.id}: same files and counter, independent writes`;
    } finally {
      await copy.kill();
    }
  });
}

function daemonPid() {
  return Number(readFileSync(pidFile, "utf8").trim());
}
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function crashAndRestart() {
  const ok = await step("daemon: kill -9", async () => {
    const pid = daemonPid();
    expect(alive(pid), `daemon pid ${pid} (from ${pidFile}) is not running`);
    process.kill(pid, "SIGKILL");
    await waitUntil(() => !alive(pid), 10_000, `daemon pid ${pid} to die`);
    for (const [runtime, { sbx }] of sandboxes) expect(cgroupFacts(sbx.id).hasProcesses, `${runtime} sandbox died with the daemon`);
    return `pid ${pid} killed; ${sandboxes.size} sandbox(es) still alive`;
  });
  if (!ok) return false;
  return step("daemon: restart", async () => {
    // As up.sh starts it: `node packages/cli/dist/main.js serve`, detached, logging to the same file.
    const log = openSync(logFile, "a");
    const child = spawn(process.execPath, [cliMain, "serve"], { detached: true, stdio: ["ignore", log, log], env: process.env });
    child.unref();
    writeFileSync(pidFile, `${child.pid}\n`);
    const t0 = performance.now();
    await waitUntil(async () => (await fetch(`${apiUrl}/healthz`).catch(() => null))?.ok === true, 120_000, "the restarted daemon's /healthz");
    return `pid ${child.pid}, healthy after ${Math.round(performance.now() - t0)} ms`;
  });
}

async function afterRestart(runtime) {
  const entry = sandboxes.get(runtime);
  if (!entry) return skip(`${runtime}: after restart`, "no sandbox");
  await step(`${runtime}: after restart`, async () => {
    const sbx = await Sandbox.connect(entry.sbx.id);
    const n = await counterAlive(sbx, entry.counterPid).catch(async (err) => {
      // Still a failure; a second try tells a slow sandbox from a lost one.
      const t0 = performance.now();
      const late = await counterAlive(sbx, entry.counterPid).then((m) => `answered a second try after ${Math.round(performance.now() - t0)} ms (counter ${m})`, (e) => `a second try failed too: ${e.message}`);
      throw new Error(`${err.message}; ${late}`);
    });
    expect((await sbx.files.readText("/root/smoke.txt")) === payload, "files changed across the crash");
    const r = await sbx.commands.run("echo still here");
    expect(r.stdout === "still here\n", `exec gave ${JSON.stringify(r.stdout)}`);
    return `reattached (state ${sbx.info.state}); same counter process at ${n}`;
  });
}

async function killAll() {
  for (const [runtime, { sbx }] of sandboxes) {
    await step(`${runtime}: kill`, async () => {
      await Sandbox.kill(sbx.id);
      await waitUntil(() => !cgroupFacts(sbx.id).hasProcesses, 20_000, "the sandbox's processes to go");
      return "gone, cgroup empty";
    });
  }
}

console.log(`stasis smoke test against ${apiUrl}: runtimes ${runtimes.join(", ")}; cgroups ${cgroupFacts("").mode}`);
const t0 = performance.now();
const healthy = await step("daemon: healthy", async () => {
  await waitUntil(async () => (await fetch(`${apiUrl}/healthz`).catch(() => null))?.ok === true, 60_000, `${apiUrl}/healthz`);
  return `pid ${daemonPid()}`;
});
if (healthy) for (const runtime of runtimes) await runtimeSteps(runtime);
if (sandboxes.size > 0) {
  if (await crashAndRestart()) for (const runtime of runtimes) await afterRestart(runtime);
  await killAll();
}
const failed = results.filter((r) => r.status === "FAIL");
const passed = results.filter((r) => r.status === "PASS").length;
console.log(`\n${passed} passed, ${failed.length} failed, ${results.length - passed - failed.length} skipped in ${Math.round((performance.now() - t0) / 1000)} s`);
for (const r of failed) console.log(`  FAIL ${r.name}: ${r.detail}`);
process.exit(failed.length > 0 ? 1 : 0);
