import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Runtime } from "@stasis/protocol";
import type { CheckpointImage } from "../checkpoint-image.js";
import type {
  AgentChannel,
  Checkpointable,
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
import { FakeAgent, type AgentFaults } from "./fake-agent.js";
import { StepFaults, type SandboxMatch } from "./fake-faults.js";
import { emptyMemory, type ShellMemory } from "./fake-shell.js";

export type FakeDriverStep = "launch" | "pause" | "resume" | "checkpoint" | "restore" | "destroy" | "observe" | "reattach";

const MEMORY_FILE = "memory.json";
const MAX_MEMORY_BYTES = 16 * 1024 * 1024;

interface FakeSandbox {
  id: string;
  dir: string;
  paused: boolean;
  agent: FakeAgent;
  memoryMiB: number;
  startedAt: number;
  stop: (reason: string) => void;
}

/**
 * The fake machine: its running sandboxes (agents in this process) and nothing else. It outlives any one
 * daemon (SandboxService), as a real host outlives a crashed daemon; images and disks live in files.
 */
export class FakeHost {
  private readonly sandboxes = new Map<string, FakeSandbox>();
  private readonly pendingFaults: { id: string | undefined; faults: AgentFaults }[] = [];

  /** The next sandbox started (under `id`, when given) gets these agent faults. */
  nextAgent(faults: AgentFaults, id?: string): void {
    this.pendingFaults.push({ id, faults });
  }

  ids(): string[] {
    return [...this.sandboxes.keys()];
  }

  has(id: string): boolean {
    return this.sandboxes.has(id);
  }

  /** The agent of a running or paused sandbox (tests read its counter and inject faults there). */
  agent(id: string): FakeAgent {
    const sb = this.sandboxes.get(id);
    if (!sb) throw new Error(`no fake sandbox ${id} on the host`);
    return sb.agent;
  }

  observe(id: string): ObservedState {
    const sb = this.sandboxes.get(id);
    return !sb ? "stopped" : sb.paused ? "paused" : "running";
  }

  /** Starts a sandbox from `memory` (fresh for a boot, an image's for a restore). */
  start(spec: SandboxLaunchSpec, memory: ShellMemory, boot: boolean): LaunchedSandbox {
    if (this.sandboxes.has(spec.id)) throw new Error(`container ${spec.id} already exists`);
    const i = this.pendingFaults.findIndex((f) => f.id === undefined || f.id === spec.id);
    const faults = i === -1 ? {} : this.pendingFaults.splice(i, 1)[0]!.faults;
    let resolveExit!: (reason: string) => void;
    const exited = new Promise<string>((r) => (resolveExit = r));
    const agent = new FakeAgent(memory, (reason) => this.stop(spec.id, reason), faults);
    const sb: FakeSandbox = { id: spec.id, dir: spec.dir, paused: false, agent, memoryMiB: spec.memoryMiB, startedAt: Date.now(), stop: resolveExit };
    this.sandboxes.set(spec.id, sb);
    const channel = agent.connect();
    this.log(sb, boot ? "started" : "restored");
    if (faults.exitBeforeHello) {
      process.nextTick(() => this.stop(spec.id, "exited with code 1"));
    } else if (boot) {
      // A restored agent just carries on: it says no hello, the daemon's ping finds it.
      agent.hello();
    }
    return { channel, exited };
  }

  /** The sandbox stops (killed, checkpointed, crashed): its channel ends and its runtime's exit resolves. */
  stop(id: string, reason: string): void {
    const sb = this.sandboxes.get(id);
    if (!sb) return;
    this.sandboxes.delete(id);
    this.log(sb, `stopped: ${reason}`);
    sb.agent.end();
    sb.stop(reason);
  }

  /** What a checkpoint does to the host: the sandbox's memory written into `dir`, then the sandbox stopped. */
  checkpointInto(id: string, dir: string): void {
    const sb = this.running(id);
    // The checkpoint runs inside the sandbox's kernel: a frozen one is thawed for it.
    if (sb.paused) this.resume(id);
    writeFileSync(join(dir, MEMORY_FILE), JSON.stringify(sb.agent.shell.snapshot()));
    this.stop(id, "checkpointed");
  }

  pause(id: string): void {
    const sb = this.running(id);
    if (sb.paused) return;
    sb.paused = true;
    sb.agent.freeze();
  }

  resume(id: string): void {
    const sb = this.running(id);
    sb.paused = false;
    sb.agent.thaw();
  }

  reattach(id: string): AgentChannel {
    return this.running(id).agent.connect();
  }

  usage(id: string): ResourceUsage {
    const sb = this.sandboxes.get(id);
    if (!sb) return { cpuUsageUsec: null, memoryBytes: null };
    return { cpuUsageUsec: (Date.now() - sb.startedAt) * 10, memoryBytes: Math.min(sb.memoryMiB, 64) * 1024 * 1024 };
  }

  /** The daemon process died: every channel to it goes quiet at once (the sandboxes keep running). */
  cutChannels(): void {
    for (const sb of this.sandboxes.values()) sb.agent.cut();
  }

  /** The host rebooted: every sandbox is gone without a word to anyone; files on disk stay. */
  reboot(): void {
    for (const sb of this.sandboxes.values()) {
      sb.agent.cut();
      sb.agent.end();
    }
    this.sandboxes.clear();
  }

  running(id: string): FakeSandbox {
    const sb = this.sandboxes.get(id);
    if (!sb) throw new Error(`container ${id} is not running`);
    return sb;
  }

  private log(sb: FakeSandbox, line: string): void {
    if (existsSync(sb.dir)) appendFileSync(join(sb.dir, "runtime.log"), `fake runtime: ${line}\n`);
  }
}

export interface FakeDriverOptions {
  /** Which runtime it stands in for (default gvisor). */
  name?: Runtime;
  /** Checkpoint and restore (default true); false is a runtime like crun. */
  checkpoint?: boolean;
  /** What probe answers (default available). */
  available?: boolean;
  /** The host uid of the sandbox's root (default 0; a user namespace's base for a crun stand-in). */
  rootOwner?: number;
  /** Shared with the fake disks of the same daemon, so a crash point in either stops both. */
  faults?: StepFaults<string>;
}

/**
 * An in-process RuntimeDriver over a FakeHost: deterministic, no root, no runtime. Every step goes through
 * fault injection (fail once, or crash the daemon before or after it).
 */
export class FakeDriver implements RuntimeDriver, Pausable, Checkpointable {
  readonly name: Runtime;
  readonly capabilities: DriverCapabilities;
  readonly rootOwner: number;
  readonly faults: StepFaults<string>;
  private readonly available: boolean;

  constructor(
    readonly host: FakeHost,
    options: FakeDriverOptions = {},
  ) {
    this.name = options.name ?? "gvisor";
    this.capabilities = { pause: true, checkpoint: options.checkpoint ?? true, buildSteps: false };
    this.available = options.available ?? true;
    this.rootOwner = options.rootOwner ?? 0;
    this.faults = options.faults ?? new StepFaults<string>();
  }

  failNext(step: FakeDriverStep, error?: Error, id?: SandboxMatch): void {
    this.faults.failNext(step, error, id);
  }

  crashAt(step: FakeDriverStep, options: { after?: boolean; id?: SandboxMatch } = {}): Promise<void> {
    return this.faults.crashAt(step, options);
  }

  probe(): Promise<RuntimeProbe> {
    const probe: RuntimeProbe = this.available ? { available: true, reason: null, details: { version: "fake" } } : { available: false, reason: "the fake runtime is switched off", details: {} };
    return Promise.resolve(probe);
  }

  launch(spec: SandboxLaunchSpec): Promise<LaunchedSandbox> {
    return this.faults.run("launch", spec.id, () => this.host.start(spec, emptyMemory(), true));
  }

  reattach(ref: SandboxRef): AgentChannel {
    return this.faults.runSync("reattach", ref.id, () => this.host.reattach(ref.id));
  }

  observe(ref: SandboxRef): Promise<ObservedState> {
    return this.faults.run("observe", ref.id, () => this.host.observe(ref.id));
  }

  destroy(ref: SandboxRef): Promise<void> {
    return this.faults.run("destroy", ref.id, () => this.host.stop(ref.id, "killed by the runtime (destroy)"));
  }

  usage(ref: SandboxRef): ResourceUsage {
    return this.host.usage(ref.id);
  }

  pause(ref: SandboxRef): Promise<void> {
    return this.faults.run("pause", ref.id, () => this.host.pause(ref.id));
  }

  resume(ref: SandboxRef): Promise<void> {
    return this.faults.run("resume", ref.id, () => this.host.resume(ref.id));
  }

  imageFormat(): string {
    return "fake 1";
  }

  checkpoint(ref: SandboxRef, image: CheckpointImage): Promise<void> {
    return this.faults.run("checkpoint", ref.id, () => {
      this.requireCheckpoint();
      this.host.running(ref.id);
      this.host.checkpointInto(ref.id, image.beginWrite());
      image.markPartialWhole();
    });
  }

  restore(spec: SandboxLaunchSpec, image: CheckpointImage): Promise<LaunchedSandbox> {
    return this.faults.run("restore", spec.id, () => {
      this.requireCheckpoint();
      if (!image.isComplete()) throw new Error(`no complete checkpoint image at ${image.path}`);
      return this.host.start(spec, readMemory(join(image.path, MEMORY_FILE)), false);
    });
  }

  private requireCheckpoint(): void {
    if (!this.capabilities.checkpoint) throw new Error(`the fake ${this.name} runtime has no checkpoint`);
  }
}

/** An image's memory, checked before use (an image is a file anyone with host access could have changed). */
function readMemory(path: string): ShellMemory {
  const text = readFileSync(path, "utf8");
  if (text.length > MAX_MEMORY_BYTES) throw new Error(`checkpoint memory ${path} is too large`);
  const memory = JSON.parse(text) as Partial<ShellMemory>;
  if (memory.format !== "stasis-fake-memory/1" || typeof memory.counter !== "number" || typeof memory.nextPid !== "number" || !Array.isArray(memory.processes)) {
    throw new Error(`checkpoint memory ${path} is not a fake sandbox's memory`);
  }
  return memory as ShellMemory;
}
