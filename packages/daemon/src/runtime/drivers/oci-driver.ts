import type { Runtime } from "@stasis/protocol";
import { sandboxCpuUsageUsec, sandboxMemoryBytes } from "../cgroups.js";
import type {
  AgentChannel,
  DriverCapabilities,
  LaunchedSandbox,
  ObservedState,
  Pausable,
  ResourceUsage,
  RuntimeDriver,
  RuntimeProbe,
  SandboxLaunchSpec,
  SandboxRef,
} from "../driver.js";
import { FifoPair } from "../fifo-channel.js";
import type { Freezer } from "../freezer.js";
import { cgroupPathOf } from "../oci-spec.js";

/**
 * What both OCI runtimes share: every process of a sandbox sits in one cgroup (`/stasis/<container id>`),
 * so pause is the cgroup freezer, liveness and usage are read from the cgroup (no runtime CLI call, which
 * a frozen gVisor sandbox would block), and the agent channel is the pair of FIFOs in the runtime folder.
 */
export abstract class OciDriver implements RuntimeDriver, Pausable {
  abstract readonly name: Runtime;
  abstract readonly capabilities: DriverCapabilities;
  abstract readonly rootOwner: number;

  protected constructor(protected readonly freezer: Freezer) {}

  abstract probe(): Promise<RuntimeProbe>;
  abstract launch(spec: SandboxLaunchSpec): Promise<LaunchedSandbox>;
  /** Kills and deletes the runtime's container(s) of the sandbox; the cgroup is already thawed. */
  protected abstract remove(ref: SandboxRef): Promise<void>;
  /** The runtime's container id for the sandbox's current incarnation. */
  protected abstract containerId(ref: SandboxRef): string;

  protected cgroupPath(ref: SandboxRef): string {
    return cgroupPathOf(this.containerId(ref));
  }

  reattach(ref: SandboxRef): AgentChannel {
    return new FifoPair(ref.dir).openForDaemon();
  }

  async observe(ref: SandboxRef): Promise<ObservedState> {
    const cgroup = this.cgroupPath(ref);
    if (!(await this.freezer.hasProcesses(cgroup))) return "stopped";
    return (await this.freezer.isFrozen(cgroup)) ? "paused" : "running";
  }

  async pause(ref: SandboxRef): Promise<void> {
    const cgroup = this.cgroupPath(ref);
    try {
      await this.freezer.freeze(cgroup);
    } catch (err) {
      // A freeze that does not complete (tasks stuck in I/O) must not leave the sandbox half frozen.
      await this.freezer.thaw(cgroup).catch(() => {});
      throw err;
    }
  }

  resume(ref: SandboxRef): Promise<void> {
    return this.freezer.thaw(this.cgroupPath(ref));
  }

  async destroy(ref: SandboxRef): Promise<void> {
    // Frozen processes cannot die, and runtime CLIs hang on a frozen gVisor sandbox: thaw first.
    const cgroup = this.cgroupPath(ref);
    if (await this.freezer.isFrozen(cgroup)) await this.freezer.thaw(cgroup).catch(() => {});
    await this.remove(ref);
  }

  usage(ref: SandboxRef): ResourceUsage {
    const cgroup = this.cgroupPath(ref);
    return { cpuUsageUsec: sandboxCpuUsageUsec(this.freezer.mode, cgroup), memoryBytes: sandboxMemoryBytes(this.freezer.mode, cgroup) };
  }
}
