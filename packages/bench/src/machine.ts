import { readFileSync } from "node:fs";
import { availableParallelism, hostname, release, totalmem } from "node:os";
import { cgroupMode, runProcess } from "./host.js";
import type { MachineInfo } from "./result.js";

async function firstLine(cmd: string[], pattern: RegExp): Promise<string> {
  try {
    const out = await runProcess(cmd, { timeoutMs: 10_000 });
    return pattern.exec(out.stdout)?.[1] ?? "unknown";
  } catch {
    return "not installed";
  }
}

/** The machine the figures were taken on, as the report names it. */
export async function describeMachine(): Promise<MachineInfo> {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const osRelease = (() => {
    try {
      return /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "Linux";
    } catch {
      return "Linux";
    }
  })();
  return {
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU",
    cores: availableParallelism(),
    memTotalMiB: Math.round(totalmem() / 1048576),
    kernel: release(),
    os: osRelease,
    runsc: await firstLine(["runsc", "--version"], /runsc version (\S+)/),
    crun: await firstLine(["crun", "--version"], /crun version (\S+)/),
    cgroups: cgroupMode(),
    node: process.versions.node,
    hostname: hostname(),
  };
}
