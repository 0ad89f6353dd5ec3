import { existsSync, readFileSync } from "node:fs";

export type CgroupMode = "v1" | "hybrid" | "v2";

/**
 * cgroup v2 (unified) is what modern hosts run; Debian 12 images often run hybrid (all controllers on v1,
 * a cgroup2 mount at /sys/fs/cgroup/unified). Both must work.
 */
export function detectCgroupMode(mounts = readFileSync("/proc/self/mounts", "utf8")): CgroupMode {
  if (/^\S+ \/sys\/fs\/cgroup cgroup2 /m.test(mounts)) return "v2";
  if (/^\S+ \/sys\/fs\/cgroup\/unified cgroup2 /m.test(mounts)) return "hybrid";
  return "v1";
}

export function freezerAvailable(mode: CgroupMode): boolean {
  return mode === "v2" ? existsSync("/sys/fs/cgroup/cgroup.controllers") : existsSync("/sys/fs/cgroup/freezer");
}

/** The controllers a sandbox's limits need. */
export function missingControllers(mode: CgroupMode): string[] {
  const wanted = ["cpu", "memory", "pids"];
  if (mode === "v2") {
    const have = readFileSync("/sys/fs/cgroup/cgroup.controllers", "utf8").split(/\s+/);
    return wanted.filter((c) => !have.includes(c));
  }
  return wanted.filter((c) => !existsSync(`/sys/fs/cgroup/${c}`));
}

/** Memory charged to a sandbox's cgroup, in bytes, or null when it cannot be read. */
export function sandboxMemoryBytes(mode: CgroupMode, cgroupPath: string): number | null {
  const file =
    mode === "v2" ? `/sys/fs/cgroup${cgroupPath}/memory.current` : `/sys/fs/cgroup/memory${cgroupPath}/memory.usage_in_bytes`;
  try {
    return Number(readFileSync(file, "utf8").trim());
  } catch {
    return null;
  }
}

/** CPU time a sandbox's cgroup has used, in microseconds, or null when it cannot be read. */
export function sandboxCpuUsageUsec(mode: CgroupMode, cgroupPath: string): number | null {
  try {
    if (mode === "v2") {
      const m = /^usage_usec (\d+)$/m.exec(readFileSync(`/sys/fs/cgroup${cgroupPath}/cpu.stat`, "utf8"));
      return m ? Number(m[1]) : null;
    }
    return Math.round(Number(readFileSync(`/sys/fs/cgroup/cpuacct${cgroupPath}/cpuacct.usage`, "utf8").trim()) / 1000);
  } catch {
    return null;
  }
}
