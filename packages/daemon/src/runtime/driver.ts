import type { Readable, Writable } from "node:stream";
import type { Runtime } from "@stasis/protocol";
import type { CheckpointImage } from "./checkpoint-image.js";

/** Which sandbox a driver call is about: its id and the runtime folder the driver owns for it. */
export interface SandboxRef {
  id: string;
  /** Per-sandbox directory owned by the driver for its bundle, channel pipes, runtime state and logs. */
  dir: string;
}

/** What a driver needs to start one sandbox. Paths are prepared by the sandbox's filesystem, not the driver. */
export interface SandboxLaunchSpec extends SandboxRef {
  /** The sandbox's root filesystem: an overlay of the read-only template and a writable upper layer. */
  rootfs: string;
  /** Host path of the static guest agent binary; mounted read-only and run as the sandbox's init. */
  agentPath: string;
  cpu: number;
  memoryMiB: number;
  pidsLimit: number;
  hostname: string;
  /** The sandbox's network namespace (made fresh for this start), or null for no network at all. */
  netnsPath: string | null;
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

/**
 * What the host shows of a sandbox, read without asking the sandbox itself (a frozen gVisor sandbox
 * cannot answer its runtime's state query): `paused` = frozen with processes, `stopped` = nothing left.
 */
export type ObservedState = "running" | "paused" | "stopped";

export interface ResourceUsage {
  /** CPU time used by the sandbox's current incarnation, in microseconds. */
  cpuUsageUsec: number | null;
  memoryBytes: number | null;
}

/** What a runtime can do beyond running sandboxes; the lifecycle asks through the type guards below. */
export interface DriverCapabilities {
  /** Freeze in RAM and thaw (Pausable). */
  pause: boolean;
  /** Save memory and processes to an image and start from it (Checkpointable): hibernation, fork, snapshots. */
  checkpoint: boolean;
  /** Run one-shot build-step containers (BuildStepRunner). */
  buildSteps: boolean;
}

/** The base interface every runtime (gVisor, crun, the fake, later microVMs) implements. */
export interface RuntimeDriver {
  readonly name: Runtime;
  readonly capabilities: DriverCapabilities;
  /**
   * The host uid that root inside this runtime's sandboxes is, which owns their files on the host: a
   * runtime that runs sandboxes in a user namespace shifts it (crun); one whose kernel is the boundary
   * runs them as host root (gVisor: 0). The template's root is copied with owners shifted to match.
   */
  readonly rootOwner: number;
  probe(): Promise<RuntimeProbe>;
  /** Creates and starts the sandbox with the agent as init; returns once the runtime has started it. */
  launch(spec: SandboxLaunchSpec): Promise<LaunchedSandbox>;
  /** Reopens the agent channel of a sandbox a previous daemon process started (it kept running). */
  reattach(ref: SandboxRef): AgentChannel;
  /** What the host shows of the sandbox now; never blocks on a frozen sandbox. */
  observe(ref: SandboxRef): Promise<ObservedState>;
  /** Kills the sandbox (thawing it first if frozen) and removes the runtime's state. Idempotent. */
  destroy(ref: SandboxRef): Promise<void>;
  /** CPU and memory of the sandbox now; a figure that cannot be read is null. */
  usage(ref: SandboxRef): ResourceUsage;
}

/** Freezes a sandbox in RAM (no CPU; memory, processes and the agent channel kept) and thaws it. */
export interface Pausable {
  pause(ref: SandboxRef): Promise<void>;
  resume(ref: SandboxRef): Promise<void>;
}

export interface Checkpointable {
  /**
   * Saves the sandbox's memory, processes and open files into `image` (written under its partial name;
   * the caller commits it) and stops the sandbox. A paused sandbox is thawed first (the checkpoint runs
   * inside its kernel); on failure it is left as it was, paused or running. The writer notes its pid in
   * `image.writerPidPath` and marks the partial image whole once it is, even if the daemon died meanwhile:
   * that is how a restarted daemon tells a whole image from a torn one.
   */
  checkpoint(ref: SandboxRef, image: CheckpointImage): Promise<void>;
  /**
   * Starts a sandbox from a complete image, with the agent channel on the sandbox's pipes. `spec.id` may
   * differ from the checkpointed sandbox's: one image restored under several ids is a fork.
   */
  restore(spec: SandboxLaunchSpec, image: CheckpointImage): Promise<LaunchedSandbox>;
  /** Which runtime build takes and restores images here (an image by another may not restore). */
  imageFormat(): string;
}

export interface BuildStepSpec {
  id: string;
  /** Folder for the step's bundle. */
  dir: string;
  /** The step's root: an overlay of the layers below and the new layer's upper folder. */
  rootfs: string;
  args: string[];
  env: Record<string, string>;
  uid: number;
  gid: number;
  cpu: number;
  memoryMiB: number;
  /** Network namespace to run in, or null for no network. */
  netnsPath: string | null;
  /** Files and folders bound into the step: resolv.conf, the build context for COPY. */
  binds: { source: string; destination: string; readonly: boolean }[];
  timeoutMs: number;
  signal?: AbortSignal;
  onLine: (line: string) => void;
}

/** Runs template build steps: one process in a throwaway sandbox, its output a line at a time. */
export interface BuildStepRunner {
  runStep(spec: BuildStepSpec): Promise<{ code: number | null; reason: string }>;
  /** After a crash: removes step containers whose daemon is gone; returns their ids, never throws. */
  removeStaleSteps(): Promise<string[]>;
}

export type PausableDriver = RuntimeDriver & Pausable;
export type CheckpointingDriver = RuntimeDriver & Checkpointable;
export type BuildStepDriver = RuntimeDriver & BuildStepRunner;

export function canPause(driver: RuntimeDriver): driver is PausableDriver {
  return driver.capabilities.pause;
}

export function canCheckpoint(driver: RuntimeDriver): driver is CheckpointingDriver {
  return driver.capabilities.checkpoint;
}

export function canRunBuildSteps(driver: RuntimeDriver): driver is BuildStepDriver {
  return driver.capabilities.buildSteps;
}
