import type { Readable, Writable } from "node:stream";
import type { Runtime } from "@stasis/protocol";

/** What a driver needs to start one sandbox. Paths are prepared by the sandbox layout, not the driver. */
export interface SandboxLaunchSpec {
  id: string;
  /** Per-sandbox directory owned by the driver for its bundle, runtime state and logs. */
  dir: string;
  /** The sandbox's root filesystem: an overlay of the read-only template and a writable upper layer. */
  rootfs: string;
  /** Host path of the static guest agent binary; mounted read-only and run as the sandbox's init. */
  agentPath: string;
  cpu: number;
  memoryMiB: number;
  pidsLimit: number;
  hostname: string;
}

/** The daemon's side of the agent channel: the agent's stdin and stdout. */
export interface AgentChannel {
  input: Writable;
  output: Readable;
}

export interface LaunchedSandbox {
  channel: AgentChannel;
  /** Resolves when the runtime process exits (the sandbox is gone), with a human reason. */
  exited: Promise<string>;
}

export interface RuntimeProbe {
  available: boolean;
  reason: string | null;
  details: Record<string, string>;
}

/** The narrow interface every runtime (gVisor, crun, later microVMs) implements. */
export interface RuntimeDriver {
  readonly name: Runtime;
  probe(): Promise<RuntimeProbe>;
  /** Starts the sandbox with the agent as init and returns once the runtime has started it. */
  launch(spec: SandboxLaunchSpec): Promise<LaunchedSandbox>;
  /** Kills the sandbox and removes the runtime's state for it. Idempotent: unknown ids are fine. */
  destroy(id: string, dir: string): Promise<void>;
  /** Host pid of the sandbox's init process (for diagnostics and memory accounting), if running. */
  hostPid(id: string, dir: string): Promise<number | null>;
  /**
   * Saves the sandbox's memory, processes and open files to `imageDir` and stops it (its runtime process
   * exits and the runtime forgets it). Absent where the runtime has no checkpoint (crun here).
   */
  checkpoint?(id: string, dir: string, imageDir: string): Promise<void>;
  /**
   * Starts a sandbox from a checkpoint image, with the agent channel on the sandbox's pipes. `spec.id`
   * may differ from the checkpointed sandbox's: one image restored under several ids is a fork.
   */
  restore?(spec: SandboxLaunchSpec, imageDir: string): Promise<LaunchedSandbox>;
}
