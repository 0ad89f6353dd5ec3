// npm run bench: Stasis through its API beside the raw runtime CLIs, timed in the same run.
// Prints median and p95; writes bench/results/latest.md. Needs root and a built base template.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Sandbox } from "@stasis/sdk";

const N_CREATE = Number(process.env.BENCH_CREATES ?? 8);
const N_ECHO = Number(process.env.BENCH_ECHOES ?? 40);
const N_RESUME = Number(process.env.BENCH_RESUMES ?? 20);
const N_HIBERNATE = Number(process.env.BENCH_HIBERNATES ?? 5);
/** How long a hibernated sandbox sleeps before it is woken (runsc cleans up a checkpointed container meanwhile). */
const SLEEP_MS = Number(process.env.BENCH_SLEEP_MS ?? 3000);
const N_FORK = Number(process.env.BENCH_FORKS ?? 4);
/** Which parts to run: exec (create, commands, pause) and hibernation (checkpoint, restore, fork). */
const SECTIONS = (process.env.BENCH_SECTIONS ?? "exec,hibernation").split(",");
const WORKING_SETS_MB = (process.env.BENCH_WORKING_SETS ?? "50,200").split(",").map(Number);
const TEMPLATES = process.env.STASIS_TEMPLATES_DIR ?? "/var/lib/stasis/templates";
const tag = `bench${process.pid}`;
const dataDir = `/var/lib/stasis-bench/${tag}`;
const runDir = `/run/stasis-bench/${tag}`;
const rows = [];

const q = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const fmt = (v, unit) => (unit === "MiB" ? (v / 1048576).toFixed(1) : v.toFixed(unit === "ms" && v < 10 ? 2 : 1));
function record(name, unit, samples) {
  const row = { name, unit, n: samples.length, median: q(samples, 0.5), p95: q(samples, 0.95) };
  rows.push(row);
  console.error(`${name.padEnd(48)} median ${fmt(row.median, unit)} ${unit}  p95 ${fmt(row.p95, unit)} ${unit}  (n=${row.n})`);
  return row;
}
async function time(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function startDaemon() {
  mkdirSync(dataDir, { recursive: true });
  const env = { ...process.env, STASIS_DATA_DIR: dataDir, STASIS_RUN_DIR: runDir, STASIS_TEMPLATES_DIR: TEMPLATES, STASIS_API_KEY: "bench-key-0123456789", STASIS_PORT: "0", STASIS_LOG_LEVEL: "info" };
  const child = spawn(process.execPath, ["packages/cli/dist/main.js", "serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
  const url = await new Promise((resolve, reject) => {
    const lines = [];
    for (const s of [child.stdout, child.stderr])
      createInterface({ input: s }).on("line", (l) => {
        lines.push(l);
        const m = /"url":"(http:[^"]+)"/.exec(l);
        if (m) resolve(m[1]);
      });
    child.once("exit", () => reject(new Error(lines.join("\n"))));
  });
  return { child, conn: { apiUrl: url, apiKey: "bench-key-0123456789" } };
}

/** Freezes or thaws a sandbox's cgroup directly (v1 freezer or v2 cgroup.freeze) and waits for it. */
function freezerWrite(id, frozen) {
  const v2 = `/sys/fs/cgroup/stasis/${id}`;
  const v1 = `/sys/fs/cgroup/freezer/stasis/${id}`;
  const isV2 = existsSync(`${v2}/cgroup.freeze`);
  if (isV2) writeFileSync(`${v2}/cgroup.freeze`, frozen ? "1" : "0");
  else writeFileSync(`${v1}/freezer.state`, frozen ? "FROZEN" : "THAWED");
  for (;;) {
    const done = isV2
      ? /^frozen 1$/m.test(readFileSync(`${v2}/cgroup.events`, "utf8")) === frozen
      : readFileSync(`${v1}/freezer.state`, "utf8").trim() === (frozen ? "FROZEN" : "THAWED");
    if (done) return;
  }
}

function cgroupMemory(id) {
  for (const f of [`/sys/fs/cgroup/stasis/${id}/memory.current`, `/sys/fs/cgroup/memory/stasis/${id}/memory.usage_in_bytes`]) {
    try {
      return Number(readFileSync(f, "utf8"));
    } catch {}
  }
  return NaN;
}

async function benchStasis(conn, runtime) {
  console.error(`\n# stasis API, ${runtime}`);
  const sandboxes = [];
  const create = [];
  for (let i = 0; i < N_CREATE; i++) {
    let s;
    create.push(await time(async () => (s = await Sandbox.create({ runtime, ...conn }))));
    sandboxes.push(s);
  }
  record(`${runtime}: create-to-ready (API)`, "ms", create);
  const s = sandboxes[0];
  // The usual API call: a shell command line. Then the same as argv, which always spawns /bin/echo.
  const echo = [];
  for (let i = 0; i < 5; i++) await s.commands.run("echo hi");
  for (let i = 0; i < N_ECHO; i++) {
    echo.push(await time(() => s.commands.run("echo hi")));
    await new Promise((r) => setTimeout(r, 50)); // an agent thinks between commands
  }
  const echoRow = record(`${runtime}: 'echo hi' round trip (API, shell string)`, "ms", echo);
  const burst = [];
  for (let i = 0; i < N_ECHO; i++) burst.push(await time(() => s.commands.run("echo hi")));
  record(`${runtime}: 'echo hi' back to back (API, shell string)`, "ms", burst);
  const argv = [];
  for (let i = 0; i < 5; i++) await s.commands.run(["/bin/echo", "hi"]);
  for (let i = 0; i < N_ECHO; i++) argv.push(await time(() => s.commands.run(["/bin/echo", "hi"])));
  record(`${runtime}: '/bin/echo hi' round trip (API, argv: spawns)`, "ms", argv);
  await new Promise((r) => setTimeout(r, 2000));
  record(`${runtime}: idle memory per sandbox (cgroup)`, "MiB", sandboxes.map((x) => cgroupMemory(x.id)).filter(Number.isFinite));
  const rss = [];
  for (const x of sandboxes) {
    const r = await x.commands.run("grep VmRSS /proc/1/status");
    rss.push(Number(/(\d+)/.exec(r.stdout)?.[1] ?? NaN) * 1024);
  }
  record(`${runtime}: guest agent idle RSS`, "MiB", rss);

  // Paused tier: the first command after a pause (thaw included), and the bare freezer thaw of the same
  // sandbox's cgroup, in the same run.
  const resume = [];
  for (let i = 0; i < N_RESUME; i++) {
    await s.pause();
    await new Promise((r) => setTimeout(r, 20));
    resume.push(await time(() => s.commands.run("echo hi")));
    await new Promise((r) => setTimeout(r, 30));
  }
  const pausedRow = record(`${runtime}: first 'echo hi' after pause (API, thaw included)`, "ms", resume);
  if (runtime === "gvisor") targets.push({ what: "gvisor: first command after resuming a paused sandbox", value: pausedRow.median, unit: "ms", target: "< 5 ms median", met: pausedRow.median < 5 });
  const resumeCall = [];
  for (let i = 0; i < N_RESUME; i++) {
    await s.pause();
    await new Promise((r) => setTimeout(r, 20));
    resumeCall.push(await time(() => s.resume()));
  }
  record(`${runtime}: resume call from paused (API)`, "ms", resumeCall);
  const thaw = [];
  for (let i = 0; i < N_RESUME; i++) {
    freezerWrite(s.id, true);
    thaw.push(await time(async () => freezerWrite(s.id, false)));
  }
  record(`${runtime}: raw freezer thaw`, "ms", thaw);
  await Promise.all(sandboxes.map((x) => x.kill()));
  return echoRow;
}

/** A Python process holding `mb` MB of random (incompressible, non-zero) bytes; prints "ready" once they are in memory. */
const holder = (mb) => `import os,sys,time\nb=bytearray(os.urandom(${mb}*1024*1024))\nprint("ready",flush=True)\nwhile True: time.sleep(3600)`;

function du(path) {
  try {
    return Number(execFileSync("du", ["-sb", path]).toString().split("\t")[0]);
  } catch {
    return NaN;
  }
}

/** Hibernated tier: hibernate, wake (resume call, and first command), image size and fork, per working set. */
async function benchHibernation(conn, mb) {
  console.error(`\n# stasis hibernation, gvisor, ${mb} MB working set`);
  const s = await Sandbox.create({ memoryMiB: Math.max(512, mb * 3), idleTimeoutMs: 0, ...conn });
  await s.files.write("/root/holder.py", holder(mb));
  const proc = await s.commands.start("exec python3 -u /root/holder.py");
  await waitForOutput(s, proc.pid, "ready");
  const hibernate = [];
  const image = [];
  const wakeCall = [];
  const wakeCommand = [];
  for (let i = 0; i < N_HIBERNATE; i++) {
    hibernate.push(await time(() => s.hibernate()));
    image.push(du(`${dataDir}/sandboxes/${s.id}/checkpoint`));
    await new Promise((r) => setTimeout(r, SLEEP_MS));
    wakeCall.push(await time(() => s.resume()));
    await s.hibernate();
    await new Promise((r) => setTimeout(r, SLEEP_MS));
    wakeCommand.push(await time(() => s.commands.run("echo hi")));
  }
  record(`gvisor ${mb} MB: hibernate (API)`, "ms", hibernate);
  record(`gvisor ${mb} MB: checkpoint image size`, "MiB", image);
  const wake = record(`gvisor ${mb} MB: resume call from hibernated (API)`, "ms", wakeCall);
  record(`gvisor ${mb} MB: first 'echo hi' after hibernation (API, restore included)`, "ms", wakeCommand);
  const fork = [];
  for (let i = 0; i < N_FORK; i++) {
    let clones = [];
    fork.push(await time(async () => (clones = await s.fork(1))));
    await Promise.all(clones.map((c) => c.kill()));
  }
  record(`gvisor ${mb} MB: fork, 1 copy (API, source restored too)`, "ms", fork);
  await s.kill();
  return wake;
}

/** Waits until a background process has printed `text` (replayed output of the process). */
async function waitForOutput(s, pid, text) {
  const stream = (await s.commands.connect(pid)).stream();
  let seen = "";
  const deadline = Date.now() + 120_000;
  try {
    for await (const ev of stream) {
      if (ev.type === "stdout") seen += ev.data;
      if (seen.includes(text) || Date.now() > deadline) break;
    }
  } finally {
    stream.close();
  }
}

/** Raw runsc: checkpoint the same working set once, then restore it repeatedly (`runsc restore --detach`). */
async function benchRawRestore(mb) {
  console.error(`\n# raw runsc checkpoint/restore, ${mb} MB working set`);
  const root = `${runDir}/raw-restore`;
  const bin = ["runsc", "--root", root, "--platform=systrap", "--network=none"];
  const dir = `${dataDir}/raw-restore-${mb}`;
  rmSync(dir, { recursive: true, force: true });
  rawBundle(dir, ["python3", "-u", "-c", holder(mb)], "runsc");
  const cfg = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
  cfg.linux.resources = { memory: { limit: Math.max(512, mb * 3) * 1048576 } };
  writeFileSync(`${dir}/config.json`, JSON.stringify(cfg));
  const id = `${tag}-hold-${mb}`;
  // Real pipes for stdio, as the daemon uses (node's "pipe" is a socketpair, and gVisor refuses to restore
  // a checkpointed socket onto anything else). Nobody reads: "ready" fits in the pipe's buffer.
  const fifo = `${dir}/stdout.fifo`;
  execFileSync("mkfifo", [fifo]);
  const out = openSync(fifo, constants.O_RDWR);
  const run = spawn(bin[0], [...bin.slice(1), "run", "--bundle", dir, id], { stdio: ["ignore", out, "ignore"], detached: true });
  // Ready once the holder's memory is resident.
  const want = mb * 1024;
  for (let i = 0; i < 600; i++) {
    const status = await new Promise((resolve) => {
      const p = spawn(bin[0], [...bin.slice(1), "exec", id, "cat", "/proc/1/status"], { stdio: ["ignore", "pipe", "ignore"] });
      let text = "";
      p.stdout.on("data", (d) => (text += d));
      p.on("exit", () => resolve(text));
    });
    if (Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) >= want) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const img = `${dir}/image`;
  const ckpt = await time(() => runQuiet([...bin, "checkpoint", "--compression=none", "--image-path", img, id]));
  record(`gvisor ${mb} MB: raw 'runsc checkpoint' (uncompressed)`, "ms", [ckpt]);
  await new Promise((r) => setTimeout(r, 300));
  await runQuiet([...bin, "delete", "-force", id]).catch(() => {});
  const restore = [];
  for (let i = 0; i < N_HIBERNATE; i++) {
    const rid = `${id}-r${i}`;
    restore.push(await time(() => runQuiet([...bin, "restore", "--detach", "--image-path", img, "--bundle", dir, rid], out)));
    await runQuiet([...bin, "kill", rid, "KILL"]).catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    await runQuiet([...bin, "delete", "-force", rid]).catch(() => {});
  }
  run.kill("SIGKILL");
  closeSync(out);
  rmSync(dir, { recursive: true, force: true });
  return record(`gvisor ${mb} MB: raw 'runsc restore --detach'`, "ms", restore);
}

function rawBundle(dir, args, style) {
  mkdirSync(dir, { recursive: true });
  rmSync(`${dir}/config.json`, { force: true });
  execFileSync(style === "runsc" ? "runsc" : "crun", ["spec"], { cwd: dir });
  const c = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
  c.process.terminal = false;
  c.process.args = args;
  c.root = { path: `${TEMPLATES}/base/rootfs`, readonly: true };
  writeFileSync(`${dir}/config.json`, JSON.stringify(c));
}

function hybridWrap(cmd) {
  const hybrid = readFileSync("/proc/self/mounts", "utf8").includes("/sys/fs/cgroup/unified cgroup2");
  if (!hybrid) return cmd;
  return ["unshare", "-m", "--propagation", "private", "sh", "-c", 'umount -l /sys/fs/cgroup/unified 2>/dev/null || mount -t tmpfs none /sys/fs/cgroup/unified; exec "$@"', "x", ...cmd];
}

async function runQuiet(cmd, stdout = "pipe") {
  await new Promise((resolve, reject) => {
    const p = spawn(cmd[0], cmd.slice(1), { stdio: ["ignore", stdout, "pipe"] });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd.join(" ")}: ${code} ${err}`))));
  });
}

async function benchRaw(runtime) {
  console.error(`\n# raw ${runtime} CLI`);
  const root = `${runDir}/raw-${runtime}`;
  const bin = runtime === "gvisor" ? ["runsc", "--root", root, "--platform=systrap", "--network=none"] : hybridWrap(["crun", "--root", root]);
  const dir = `${dataDir}/raw-${runtime}`;
  rmSync(dir, { recursive: true, force: true });
  rawBundle(`${dir}/true`, ["/bin/true"], runtime === "gvisor" ? "runsc" : "crun");
  rawBundle(`${dir}/sleep`, ["/bin/sleep", "3600"], runtime === "gvisor" ? "runsc" : "crun");
  const run = [];
  for (let i = 0; i < N_CREATE; i++) run.push(await time(() => runQuiet([...bin, "run", "--bundle", `${dir}/true`, `${tag}-${runtime}-true-${i}`])));
  record(`${runtime}: raw '${runtime === "gvisor" ? "runsc" : "crun"} run /bin/true' (cold)`, "ms", run);
  const id = `${tag}-${runtime}-sleep`;
  const detached = spawn(bin[0], [...bin.slice(1), "run", "--bundle", `${dir}/sleep`, id], { stdio: "ignore", detached: true });
  await new Promise((r) => setTimeout(r, 1500));
  const exec = [];
  for (let i = 0; i < 3; i++) await runQuiet([...bin, "exec", id, "/bin/echo", "hi"]);
  for (let i = 0; i < N_ECHO; i++) exec.push(await time(() => runQuiet([...bin, "exec", id, "/bin/echo", "hi"])));
  const row = record(`${runtime}: raw '${runtime === "gvisor" ? "runsc" : "crun"} exec echo hi'`, "ms", exec);
  await runQuiet([...bin, "kill", id, "KILL"]).catch(() => {});
  await runQuiet([...bin, "delete", ...(runtime === "gvisor" ? ["-force"] : ["--force"]), id]).catch(() => {});
  detached.kill("SIGKILL");
  return row;
}

const { child, conn } = await startDaemon();
const ratios = [];
const targets = [];
try {
  for (const runtime of SECTIONS.includes("exec") ? ["gvisor", "crun"] : []) {
    const api = await benchStasis(conn, runtime);
    const raw = await benchRaw(runtime);
    ratios.push({ runtime, ratio: raw.median / api.median });
  }
  for (const mb of SECTIONS.includes("hibernation") ? WORKING_SETS_MB : []) {
    const wake = await benchHibernation(conn, mb);
    const raw = await benchRawRestore(mb);
    const ratio = wake.median / raw.median;
    targets.push({
      what: `gvisor ${mb} MB: resume from hibernation vs raw 'runsc restore'`,
      value: ratio,
      unit: "x",
      target: `<= 1.2x${mb >= 200 ? ", and < 1000 ms" : ""}`,
      met: ratio <= 1.2 && (mb < 200 || wake.median < 1000),
      detail: `${wake.median.toFixed(0)} ms vs ${raw.median.toFixed(0)} ms`,
    });
  }
} finally {
  child.kill("SIGTERM");
}
console.error("");
for (const r of ratios) console.error(`${r.runtime}: API 'echo hi' is ${r.ratio.toFixed(1)}x faster than raw exec (medians, same run)`);
const md = [
  `Measured ${new Date().toISOString()} on ${execFileSync("nproc").toString().trim()} cores, kernel ${execFileSync("uname", ["-r"]).toString().trim()}; command: npm run bench`,
  "",
  "| measurement | n | median | p95 |",
  "|---|---|---|---|",
  ...rows.map((r) => `| ${r.name} | ${r.n} | ${fmt(r.median, r.unit)} ${r.unit} | ${fmt(r.p95, r.unit)} ${r.unit} |`),
  "",
  ...ratios.map((r) => `- ${r.runtime}: API \`echo hi\` round trip is **${r.ratio.toFixed(1)}x** faster than raw \`exec\` (medians, same run)`),
  ...targets.map((t) => `- ${t.what}: **${t.unit === "x" ? `${t.value.toFixed(2)}x` : `${t.value.toFixed(2)} ${t.unit}`}**${t.detail ? ` (${t.detail})` : ""}; target ${t.target}: ${t.met ? "met" : "**not met**"}`),
  "",
].join("\n");
mkdirSync("bench/results", { recursive: true });
writeFileSync("bench/results/latest.md", md);
console.log(md);
rmSync(dataDir, { recursive: true, force: true });
rmSync(runDir, { recursive: true, force: true });
