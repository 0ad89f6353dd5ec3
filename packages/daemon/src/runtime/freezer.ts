import { readFile, writeFile } from "node:fs/promises";
import type { CgroupMode } from "./cgroups.js";

const POLL_MS = 0.2;
const TIMEOUT_MS = 10_000;

/**
 * Freezes and thaws a sandbox's cgroup: the paused tier. Both runtimes put every process of a sandbox
 * in the same cgroup path, so this works for gVisor (sentry, gofer, stubs) and crun alike. A freeze
 * takes ~0.5 ms and the sandbox keeps its memory, processes and agent channel.
 */
export class Freezer {
  constructor(readonly mode: CgroupMode) {}

  freeze(cgroupPath: string): Promise<void> {
    return this.set(cgroupPath, true);
  }

  thaw(cgroupPath: string): Promise<void> {
    return this.set(cgroupPath, false);
  }

  /**
   * Whether any process lives in the cgroup. Unlike `runsc state`, this needs no answer from the sandbox,
   * which a frozen gVisor sandbox cannot give.
   */
  async hasProcesses(cgroupPath: string): Promise<boolean> {
    const file = this.mode === "v2" ? `/sys/fs/cgroup${cgroupPath}/cgroup.procs` : `/sys/fs/cgroup/freezer${cgroupPath}/cgroup.procs`;
    try {
      return (await readFile(file, "utf8")).trim() !== "";
    } catch {
      return false;
    }
  }

  async isFrozen(cgroupPath: string): Promise<boolean> {
    try {
      return this.mode === "v2"
        ? /^frozen 1$/m.test(await readFile(`/sys/fs/cgroup${cgroupPath}/cgroup.events`, "utf8"))
        : (await readFile(`/sys/fs/cgroup/freezer${cgroupPath}/freezer.state`, "utf8")).trim() !== "THAWED";
    } catch {
      return false;
    }
  }

  private async set(cgroupPath: string, frozen: boolean): Promise<void> {
    const started = performance.now();
    // The kernel freezes asynchronously: write the request, then poll until the state reads back.
    if (this.mode === "v2") {
      await writeFile(`/sys/fs/cgroup${cgroupPath}/cgroup.freeze`, frozen ? "1" : "0");
    } else {
      await writeFile(`/sys/fs/cgroup/freezer${cgroupPath}/freezer.state`, frozen ? "FROZEN" : "THAWED");
    }
    for (;;) {
      const state = await this.readState(cgroupPath);
      if (state === frozen) return;
      if (performance.now() - started > TIMEOUT_MS) {
        throw new Error(`cgroup ${cgroupPath} did not ${frozen ? "freeze" : "thaw"} within ${TIMEOUT_MS} ms`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  private async readState(cgroupPath: string): Promise<boolean | null> {
    if (this.mode === "v2") {
      const events = await readFile(`/sys/fs/cgroup${cgroupPath}/cgroup.events`, "utf8");
      return /^frozen 1$/m.test(events);
    }
    const state = (await readFile(`/sys/fs/cgroup/freezer${cgroupPath}/freezer.state`, "utf8")).trim();
    return state === "FROZEN" ? true : state === "THAWED" ? false : null;
  }
}
