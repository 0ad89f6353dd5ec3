import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import { Sandbox } from "@stasis/sdk";
import { errorText, freezerWrite, mapLimit, runProcess, sleep } from "./host.js";
import { RawRuntime, removeCgroupTree } from "./raw/runtime.js";

export interface BenchDaemonOptions {
  /** The stasis CLI's main.js: the daemon runs as `node main.js serve`, as a user runs it. */
  cliPath: string;
  dataDir: string;
  runDir: string;
  templatesDir: string;
  maxSandboxes: number;
  /** More STASIS_* settings (e.g. STASIS_WARM_POOL). */
  env?: Record<string, string>;
  /** Every line the daemon logs is kept here (for a post-mortem of errors in a run). */
  logFile?: string;
  log: (line: string) => void;
}

export interface BenchDaemon {
  url: string;
  conn: { apiUrl: string; apiKey: string };
  dataDir: string;
  runDir: string;
  /** Error-level lines the daemon logged, as "msg: err.message". */
  errors: string[];
  pid: number | undefined;
  /** Stops the daemon (SIGTERM, then SIGKILL after the grace period). Idempotent. */
  stop(graceMs?: number): Promise<void>;
  /** Whether its process still runs. */
  running(): boolean;
}

interface LogLine {
  level?: number;
  msg?: string;
  url?: string;
  err?: { message?: string };
  id?: string;
}

/**
 * Starts a private daemon for the bench: its own data and run directories, a random API key, a free port,
 * the shared built templates, capacity for the concurrency and density scenarios, and no hibernation on
 * stop (the bench deletes its sandboxes itself). Its own process group, so a Ctrl-C in the terminal
 * reaches only the bench, which then stops the daemon in order.
 */
export async function startBenchDaemon(options: BenchDaemonOptions): Promise<BenchDaemon> {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o711 });
  const apiKey = `bench_${randomBytes(16).toString("hex")}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    STASIS_DATA_DIR: options.dataDir,
    STASIS_RUN_DIR: options.runDir,
    STASIS_TEMPLATES_DIR: options.templatesDir,
    STASIS_API_KEY: apiKey,
    STASIS_HOST: "127.0.0.1",
    STASIS_PORT: "0",
    STASIS_LOG_LEVEL: "info",
    STASIS_MAX_SANDBOXES: String(options.maxSandboxes),
    STASIS_HIBERNATE_ON_STOP: "0",
    ...options.env,
  };
  const child: ChildProcess = spawn(process.execPath, [options.cliPath, "serve"], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const errors: string[] = [];
  const tail: string[] = [];
  if (options.logFile) mkdirSync(dirname(options.logFile), { recursive: true });
  const logFile = options.logFile ? createWriteStream(options.logFile) : undefined;
  let exited = false;
  let stopRequested = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exited = true;
      if (!stopRequested) {
        const line = `the bench daemon exited on its own (code ${code}, signal ${signal}); its last lines:\n${tail.slice(-15).join("\n")}`;
        errors.push(line);
        options.log(`!! ${line}`);
      }
      logFile?.end();
      resolve();
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on("line", (line) => {
        tail.push(line);
        if (tail.length > 50) tail.shift();
        logFile?.write(`${line}\n`);
        let parsed: LogLine | undefined;
        try {
          parsed = JSON.parse(line) as LogLine;
        } catch {
          return;
        }
        if (parsed.url && parsed.msg?.includes("listening")) resolve(parsed.url);
        if ((parsed.level ?? 0) >= 50 && errors.length < 500) errors.push(`${parsed.msg ?? "?"}${parsed.id ? ` (${parsed.id})` : ""}${parsed.err?.message ? `: ${parsed.err.message}` : ""}`);
      });
    }
    void exit.then(() => reject(new Error(`the bench daemon exited before listening:\n${tail.join("\n")}`)));
    setTimeout(() => reject(new Error(`the bench daemon did not listen within 60 s:\n${tail.join("\n")}`)), 60_000).unref();
  });
  options.log(`bench daemon: ${url} (pid ${child.pid}), data ${options.dataDir}`);
  let stopping: Promise<void> | undefined;
  return {
    url,
    conn: { apiUrl: url, apiKey },
    dataDir: options.dataDir,
    runDir: options.runDir,
    errors,
    pid: child.pid,
    running: () => !exited,
    stop(graceMs = 30_000) {
      stopping ??= (async () => {
        stopRequested = true;
        if (exited) return;
        child.kill("SIGTERM");
        await Promise.race([exit, unrefSleep(graceMs)]);
        if (!exited) {
          child.kill("SIGKILL");
          await Promise.race([exit, unrefSleep(5_000)]);
        }
      })();
      return stopping;
    },
  };
}

/** A wait that does not keep the process alive (the grace period's timer outlives a daemon that stopped at once). */
const unrefSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Deletes every sandbox the (private) daemon lists; returns how many were left and any errors. */
export async function deleteAllSandboxes(conn: { apiUrl: string; apiKey: string }, timeoutMs = 120_000): Promise<{ deleted: number; errors: string[] }> {
  const ids: string[] = [];
  for await (const s of Sandbox.listAll({}, { ...conn, requestTimeoutMs: 10_000 })) ids.push(s.id);
  const errors: string[] = [];
  const deadline = Date.now() + timeoutMs;
  await mapLimit(ids, 8, async (id) => {
    if (Date.now() > deadline) return;
    await Sandbox.kill(id, { ...conn, requestTimeoutMs: Math.max(1_000, deadline - Date.now()) }).catch((err: unknown) => {
      if (!/not[ _]found/i.test(errorText(err))) errors.push(`${id}: ${errorText(err)}`);
    });
  });
  return { deleted: ids.length, errors };
}

/** Processes whose command line contains one of `needles` (never this process). */
function processesMentioning(needles: string[]): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ");
      if (needles.some((n) => cmd.includes(n))) out.push({ pid: Number(entry), cmd });
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => (l.split(" ")[1] ?? "").replace(/\\040/g, " "))
    .filter((m) => m === dir || m.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

/**
 * Removes whatever the bench daemon left once it is stopped: containers under its runtime roots, the
 * sandboxes' cgroups, mounts under its data directory, and both directories. Only ever touches this
 * run's own directories and the cgroups of the sandboxes found in them. Returns what it could not remove.
 */
export async function removeDaemonLeftovers(dataDir: string, runDir: string): Promise<string[]> {
  const problems: string[] = [];
  const sandboxesDir = `${dataDir}/sandboxes`;
  const ids = existsSync(sandboxesDir) ? readdirSync(sandboxesDir).filter((n) => /^sbx_[0-9a-f]+$/.test(n)) : [];
  // Frozen processes cannot die: thaw whatever the daemon left paused (e.g. warm-pool members) first.
  for (const id of ids) {
    try {
      freezerWrite(`/stasis/${id}`, false);
      problems.push(`sandbox ${id} was still there after its daemon stopped (thawed and removed)`);
    } catch {
      // no freezer cgroup: nothing runs under this id
    }
  }
  for (const runtime of ["gvisor", "crun"] as const) {
    const root = `${runDir}/${runtime === "gvisor" ? "runsc" : "crun"}`;
    if (existsSync(root)) await new RawRuntime(runtime, { root, workDir: runDir, rootfs: "/", tag: "none" }).sweep().catch((err: unknown) => problems.push(`${runtime} sweep: ${errorText(err)}`));
  }
  // Whatever still runs from this daemon's directories (a runtime the sweep could not stop) is killed.
  const stragglers = processesMentioning([`${runDir}/`, `${dataDir}/sandboxes/`]);
  if (stragglers.length > 0) {
    problems.push(`killed ${stragglers.length} runtime process(es) left running: ${stragglers.map((p) => p.pid).join(", ")}`);
    for (const p of stragglers) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    await sleep(1_000);
  }
  for (const mount of mountsUnder(dataDir)) {
    const out = await runProcess(["umount", mount], { timeoutMs: 30_000 }).catch(() => undefined);
    if (out?.code !== 0) await runProcess(["umount", "-l", mount], { timeoutMs: 30_000 }).catch(() => undefined);
  }
  for (const id of ids) removeCgroupTree(`/stasis/${id}`);
  // Its sandboxes' networks: the table and namespaces named by its tag (from the data folder's path).
  const tag = createHash("sha256").update(dataDir).digest("hex").slice(0, 6);
  const namespaces = existsSync("/var/run/netns") ? readdirSync("/var/run/netns").filter((n) => n.startsWith(`stasis-${tag}-`)) : [];
  if (namespaces.length > 0) problems.push(`${namespaces.length} network namespace(s) were left (removed)`);
  for (const ns of namespaces) await runProcess(["ip", "netns", "del", ns], { timeoutMs: 10_000 }).catch(() => undefined);
  await runProcess(["nft", "delete", "table", "ip", `stasis_${tag}`], { timeoutMs: 10_000 }).catch(() => undefined);
  const still = mountsUnder(dataDir);
  const alive = processesMentioning([`${runDir}/`, `${dataDir}/sandboxes/`]);
  if (still.length > 0 || alive.length > 0) {
    problems.push(`still mounted or running, so ${dataDir} was kept: ${[...still, ...alive.map((p) => `pid ${p.pid}`)].join(", ")}`);
  } else {
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 200 });
  }
  rmSync(runDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 200 });
  return problems;
}
