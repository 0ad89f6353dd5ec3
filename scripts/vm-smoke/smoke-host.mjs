// What the host's cgroups say about a sandbox, read directly (not through the daemon), for smoke.mjs.
// Both runtimes put a sandbox in /stasis/<container id>, where the container id is the sandbox id or,
// after a restore, <sandbox id>-<n>. Pure cgroup v2 and v1/hybrid layouts are both read.
import { existsSync, readdirSync, readFileSync } from "node:fs";

const mounts = readFileSync("/proc/self/mounts", "utf8");
const mode = /^\S+ \/sys\/fs\/cgroup cgroup2 /m.test(mounts) ? "v2" : /^\S+ \/sys\/fs\/cgroup\/unified cgroup2 /m.test(mounts) ? "hybrid" : "v1";
const v2 = mode === "v2";

function read(file) {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return null;
  }
}
const nsToUs = (ns) => (ns === null ? null : Math.round(ns / 1000));
const num = (s) => (s === null || s === "max" || s === "" ? null : Number(s));
/** The folder of `controller` (v1) or the unified tree (v2) for a cgroup path. */
const dirOf = (controller, path) => (v2 ? `/sys/fs/cgroup${path}` : `/sys/fs/cgroup/${controller}${path}`);

/** The sandbox's current cgroup path: the incarnation with processes, else the newest one. */
function cgroupPath(sandboxId) {
  const parent = dirOf("memory", "/stasis");
  if (!sandboxId || !existsSync(parent)) return null;
  const incarnation = (name) => (name === sandboxId ? 0 : name.startsWith(`${sandboxId}-`) ? Number(name.slice(sandboxId.length + 1)) : NaN);
  const names = readdirSync(parent)
    .filter((n) => Number.isInteger(incarnation(n)))
    .sort((a, b) => incarnation(b) - incarnation(a));
  const busy = names.find((n) => read(`${dirOf("memory", `/stasis/${n}`)}/cgroup.procs`));
  const name = busy ?? names[0];
  return name === undefined ? null : `/stasis/${name}`;
}

export function cgroupFacts(sandboxId) {
  const path = cgroupPath(sandboxId);
  if (path === null) return { mode, dir: null, hasProcesses: false, frozen: false, memoryLimit: null, pidsLimit: null, cpuLimit: null, cpuUsec: null };
  const cpuStat = read(`${dirOf("cpu", path)}/cpu.stat`) ?? "";
  return {
    mode,
    dir: dirOf(v2 ? "" : "memory", path),
    hasProcesses: Boolean(read(`${dirOf("memory", path)}/cgroup.procs`)),
    frozen: v2 ? /^frozen 1$/m.test(read(`${dirOf("", path)}/cgroup.events`) ?? "") : read(`${dirOf("freezer", path)}/freezer.state`) === "FROZEN",
    memoryLimit: num(read(v2 ? `${dirOf("", path)}/memory.max` : `${dirOf("memory", path)}/memory.limit_in_bytes`)),
    pidsLimit: num(read(`${dirOf("pids", path)}/pids.max`)),
    cpuLimit: v2 ? read(`${dirOf("", path)}/cpu.max`) : `${read(`${dirOf("cpu", path)}/cpu.cfs_quota_us`)} ${read(`${dirOf("cpu", path)}/cpu.cfs_period_us`)}`,
    cpuUsec: v2 ? num(/^usage_usec (\d+)$/m.exec(cpuStat)?.[1] ?? null) : nsToUs(num(read(`${dirOf("cpuacct", path)}/cpuacct.usage`))),
  };
}

export async function waitUntil(check, timeoutMs, what) {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
