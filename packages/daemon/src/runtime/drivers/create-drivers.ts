import { join } from "node:path";
import type { Runtime } from "@stasis/protocol";
import type { CgroupMode } from "../cgroups.js";
import type { RuntimeDriver } from "../driver.js";
import { Freezer } from "../freezer.js";
import { CrunDriver } from "./crun-driver.js";
import { GvisorDriver } from "./gvisor-driver.js";

export interface HostRuntimeOptions {
  runscPath: string;
  crunPath: string;
  /** Volatile runtime state (a tmpfs such as /run). */
  runDir: string;
  runscPlatform: "systrap" | "ptrace" | null;
  usernsBase: number;
  cgroupMode: CgroupMode;
}

/** The real runtimes of this host, by name. */
export function createHostDrivers(options: HostRuntimeOptions): Map<Runtime, RuntimeDriver> {
  const freezer = new Freezer(options.cgroupMode);
  return new Map<Runtime, RuntimeDriver>([
    [
      "gvisor",
      new GvisorDriver({
        runscPath: options.runscPath,
        stateRoot: join(options.runDir, "runsc"),
        buildStateRoot: join(options.runDir, "runsc-build"),
        platform: options.runscPlatform,
        freezer,
      }),
    ],
    ["crun", new CrunDriver({ crunPath: options.crunPath, stateRoot: join(options.runDir, "crun"), cgroupMode: options.cgroupMode, usernsBase: options.usernsBase, freezer })],
  ]);
}
