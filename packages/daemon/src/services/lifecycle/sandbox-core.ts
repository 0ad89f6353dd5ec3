import { readFileSync } from "node:fs";
import type { InboundConnections } from "./inbound-connections.js";
import { join } from "node:path";
import type { Logger } from "pino";
import { SandboxStateSchema, type NetworkPolicy, type ResolvedNetworkPolicy, type Runtime } from "@stasis/protocol";
import { AgentClient } from "../../agent-client/agent-client.js";
import type { DaemonConfig } from "../../config/config.js";
import { ApiError } from "../../errors/api-error.js";
import type { Metrics } from "../../observability/metrics.js";
import type { AgentChannel, LaunchedSandbox, RuntimeDriver, RuntimeProbe, SandboxLaunchSpec, SandboxRef } from "../../runtime/driver.js";
import type { SandboxFilesystem } from "../../disks/sandbox-filesystem.js";
import type { SandboxNetworks } from "../../network/sandbox-network.js";
import type { SandboxRecord, SandboxStore } from "../../store/sandbox-store.js";
import type { ResolvedTemplate, TemplateStore } from "../../templates/template-store.js";
import { Limiter } from "../../concurrency/limiter.js";
import { pinAgent, removeUnusedAgents, type PinnedAgent } from "./agent-binary.js";
import { RESIDENT_STATES } from "./records.js";

/** The per-sandbox disk and root filesystem operations the lifecycle uses (a fake in unit tests). */
export type SandboxDisks = Pick<SandboxFilesystem, "paths" | "create" | "createFromImage" | "unmount" | "clone" | "sync" | "thaw" | "isMounted" | "mount" | "remove">;
/** The template operations the lifecycle uses. */
export type TemplateSource = Pick<TemplateStore, "resolve" | "rootfs" | "snapshotDir" | "pooledTemplates">;

export interface SandboxServiceDeps {
  config: DaemonConfig;
  store: SandboxStore;
  drivers: Map<Runtime, RuntimeDriver>;
  filesystem: SandboxDisks;
  templates: TemplateSource;
  metrics: Metrics;
  log: Logger;
  /** Sandboxes' networks; absent or null: sandboxes run with no network at all. */
  network?: SandboxNetworks | null;
  /** Secrets for sandboxes' requests: placeholders, and the CA sandboxes trust for the hosts they go to. */
  secrets?: EgressSecrets | null;
  /** CA certificates (PEM) every sandbox with a network trusts besides the public roots (the operator's). */
  extraCaPem?: string | null;
  /** The daemon's connections into sandboxes' ports, reset before a checkpoint. */
  inbound?: InboundConnections;
}

export interface EgressSecrets {
  /** name -> a fresh placeholder; throws secret_not_found / secrets_unavailable. */
  issue(names: readonly string[]): Record<string, string>;
  /** The egress proxy's CA certificate (PEM). */
  caPem: string;
}

/** A sandbox whose runtime is up and whose agent channel is open. */
export interface LiveSandbox {
  record: SandboxRecord;
  agent: AgentClient;
}

/** What keeps a sandbox awake: recent API calls and open streams or foreground commands. */
interface Activity {
  lastAt: number;
  holds: number;
  /** The deadlines of foreground commands in flight (Infinity: none): a hibernation waits for them. */
  commands: Set<{ deadline: number }>;
}

export const AGENT_READY_TIMEOUT_MS = 15_000;

/**
 * What every part of the lifecycle shares: the records (in the store), the live agent channels, one lock
 * per sandbox (a promise chain every transition of that sandbox runs on), activity for standby, the
 * runtimes, and the teardown every path ends in. It knows no transition itself.
 */
export class SandboxCore {
  readonly live = new Map<string, LiveSandbox>();
  private readonly probes = new Map<Runtime, RuntimeProbe>();
  /** The tail of each sandbox's chain of lifecycle transitions. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly activity = new Map<string, Activity>();
  /** Teardowns in flight: delete, expiry and death can race for the same sandbox. */
  private readonly tearingDown = new Map<string, Promise<void>>();
  /** Boots and restores at once: a burst queues here (counted as `creating` against capacity). */
  readonly boots: Limiter;
  /** Sandboxes booted to take a template's snapshot: hidden like pool members, but no pool's to discard. */
  readonly snapshotting = new Set<string>();
  /** Template versions a delete is removing: creates, pool claims and refills refuse them. */
  readonly deletingTemplates = new Set<string>();

  private pinned: PinnedAgent | null = null;

  constructor(readonly deps: SandboxServiceDeps) {
    this.boots = new Limiter(deps.config.createParallelism);
  }

  /** The agent new sandboxes start with: the configured binary, pinned under its hash. */
  get agent(): PinnedAgent {
    this.pinned ??= pinAgent(this.deps.config.agentPath, this.deps.config.dataDir);
    return this.pinned;
  }

  /** After reconcile: pinned agents that no sandbox records are removed. */
  removeUnusedAgents(): void {
    const removed = removeUnusedAgents(this.deps.config.dataDir, this.agent, this.deps.store.live().map((r) => r.agent));
    if (removed.length > 0) this.deps.log.info({ agents: removed }, "removed agent binaries no sandbox uses");
  }

  get log(): Logger {
    return this.deps.log;
  }

  async probeRuntimes(): Promise<void> {
    for (const [name, driver] of this.deps.drivers) {
      const probe = await driver.probe();
      this.probes.set(name, probe);
      this.deps.log.info({ runtime: name, ...probe }, probe.available ? "runtime available" : "runtime unavailable");
    }
  }

  probeOf(runtime: Runtime): RuntimeProbe | undefined {
    return this.probes.get(runtime);
  }

  record(id: string): SandboxRecord {
    const record = this.deps.store.get(id);
    if (!record) throw new ApiError("sandbox_not_found", `no sandbox '${id}'`);
    return record;
  }

  /** The driver of a configured and available runtime, or a clear error. */
  usableDriver(runtime: Runtime): RuntimeDriver {
    const driver = this.deps.drivers.get(runtime);
    const probe = this.probes.get(runtime);
    if (!driver || !probe?.available) {
      throw new ApiError("runtime_unavailable", `runtime '${runtime}' is not usable here: ${probe?.reason ?? "not configured"}; run \`stasis doctor\``);
    }
    return driver;
  }

  /** The sandbox as its driver knows it. */
  ref(id: string): SandboxRef {
    return { id, dir: this.deps.filesystem.paths(id).runtimeDir };
  }

  /** Runs `fn` after every transition already queued for this sandbox. */
  exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return run;
  }

  /** Whether a transition is running or queued for the sandbox. */
  isLocked(id: string): boolean {
    return this.locks.has(id);
  }

  touch(id: string): Activity {
    let a = this.activity.get(id);
    if (!a) this.activity.set(id, (a = { lastAt: Date.now(), holds: 0, commands: new Set() }));
    else a.lastAt = Date.now();
    return a;
  }

  activityOf(id: string): Activity | undefined {
    return this.activity.get(id);
  }

  forget(id: string): void {
    this.activity.delete(id);
  }

  checkCapacity(adding: number): void {
    // In-flight creates are counted through their `creating` records; hibernated sandboxes hold no memory.
    const counts = this.deps.store.countByState();
    const active = RESIDENT_STATES.reduce((n, state) => n + (counts[state] ?? 0), 0);
    if (active + adding > this.deps.config.maxSandboxes) {
      throw new ApiError("capacity_exceeded", `the daemon runs its maximum of ${this.deps.config.maxSandboxes} sandboxes (hibernated ones do not count)`);
    }
  }

  /** Host uid of the sandbox's root: crun sandboxes run in a user namespace. */
  ownerOf(record: SandboxRecord): number {
    return this.rootOwnerFor(record.runtime);
  }

  /**
   * The host uid of root in a sandbox of `runtime`, as its driver says. A runtime not configured on this
   * daemon starts nothing; its failed sandboxes' files are then read over the unshifted root (0).
   */
  rootOwnerFor(runtime: Runtime): number {
    return this.deps.drivers.get(runtime)?.rootOwner ?? 0;
  }

  /**
   * What a start of the sandbox's runtime needs, its network namespace made fresh (an address assigned
   * first if it has none: a new sandbox, a fork's clone), or, with `keptNetwork`, the namespace it kept
   * while its runtime stopped for a moment (a fork's source) where it still has one.
   */
  async prepareLaunch(record: SandboxRecord, options: { keptNetwork?: boolean } = {}): Promise<SandboxLaunchSpec> {
    const network = this.deps.network;
    if (!network || !record.network) return this.launchSpec(record, null);
    if (!record.network.address) {
      record.network = network.assignAddress(record.network);
      this.deps.store.setNetwork(record.id, record.network);
    }
    if (options.keptNetwork) {
      const kept = await network.reattach(record.id, record.network).catch((err: Error) => {
        this.deps.log.warn({ sandbox: record.id, err: err.message }, "the sandbox's kept network could not be reused; making it anew");
        return null;
      });
      if (kept) return this.launchSpec(record, kept);
    }
    return this.launchSpec(record, await network.attach(record.id, record.network));
  }

  /** The policy a create gets: its own, over its template's, over the daemon's default. */
  policyFor(requested: NetworkPolicy | undefined, template: ResolvedTemplate): ResolvedNetworkPolicy {
    const network = this.deps.network;
    if (!network) return { internet: false, allowOut: [], denyOut: [] };
    return network.resolvePolicy(requested, template.network ? network.resolvePolicy(template.network) : undefined);
  }

  /** The runtime is gone but the sandbox stays (hibernated, failed): its namespace and rules go. */
  async leaveNetwork(record: SandboxRecord): Promise<void> {
    const current = this.deps.store.get(record.id)?.network ?? record.network;
    const counted = this.deps.network?.counters(record.id);
    if (current && counted) {
      // The counters die with the namespace: what they counted is carried in the record.
      this.deps.store.setNetwork(record.id, { ...current, sentBytes: (current.sentBytes ?? 0) + counted.sentBytes, receivedBytes: (current.receivedBytes ?? 0) + counted.receivedBytes });
    }
    if (record.network) await this.deps.network?.detach(record.id, record.network).catch((err: Error) => this.deps.log.warn({ sandbox: record.id, err: err.message }, "removing a sandbox's network failed"));
  }

  launchSpec(record: SandboxRecord, netnsPath: string | null): SandboxLaunchSpec {
    const paths = this.deps.filesystem.paths(record.id);
    return {
      id: record.id,
      dir: paths.runtimeDir,
      rootfs: paths.rootfs,
      // The agent it was started with: a restore must mount the very binary it checkpointed.
      agentPath: record.agent ?? this.deps.config.agentPath,
      cpu: record.cpu,
      memoryMiB: record.memoryMiB,
      pidsLimit: this.deps.config.pidsLimit,
      hostname: "sandbox",
      netnsPath,
    };
  }

  /**
   * Opens the agent channel of a freshly started runtime and waits until the agent answers (`first`: the
   * exchange that finds it, by default its hello or a ping).
   */
  async connect(record: SandboxRecord, launched: LaunchedSandbox, timeoutMs: number, phase: string, first = (agent: AgentClient) => agent.waitReady(timeoutMs)): Promise<AgentClient> {
    const agent = this.agentOn(record.id, launched.channel);
    const exitedDuring = (reason: string) => new ApiError("sandbox_failed", `sandbox exited during ${phase} (${reason}): ${this.runtimeLogTail(record.id)}`);
    const exitedEarly = launched.exited.then((reason) => {
      throw exitedDuring(reason);
    });
    try {
      await Promise.race([first(agent), exitedEarly]);
      return agent;
    } catch (err) {
      agent.close(`${phase} failed`);
      if (err instanceof ApiError && /exited during/.test(err.message)) throw err;
      // A channel that closed means the runtime is going: its exit and log say why, better than EOF.
      const reason = await Promise.race([launched.exited, new Promise<null>((r) => setTimeout(() => r(null), 1_000))]);
      throw reason === null ? err : exitedDuring(reason);
    } finally {
      exitedEarly.catch(() => {});
    }
  }

  agentOn(id: string, channel: AgentChannel): AgentClient {
    return new AgentClient(channel, this.deps.log.child({ sandbox: id }));
  }

  /** Makes the sandbox live. `exited` is known only for sandboxes this daemon process started. */
  attach(record: SandboxRecord, agent: AgentClient, exited?: Promise<string>): void {
    this.live.set(record.id, { record, agent });
    this.touch(record.id);
    agent.clearWatches();
    // A spare shell for the commonest request (sh -c with the sandbox's env, as root): spawning a process
    // inside gVisor costs milliseconds, so the agent keeps one started ahead of time.
    agent
      .prewarm({ env: record.env, user: "root" })
      .catch((err: Error) => this.deps.log.debug({ sandbox: record.id, err: err.message }, "agent keeps no spare shell"));
    agent.once("closed", (reason: string) => {
      this.onAgentClosed(record, agent, reason, exited).catch((err: Error) => this.deps.log.error({ err, sandbox: record.id }, "handling a dead sandbox failed"));
    });
  }

  /** Takes the sandbox off the live map and closes its channel without treating that as a death. */
  detach(id: string, reason: string): LiveSandbox | undefined {
    const live = this.live.get(id);
    this.live.delete(id);
    if (live) {
      live.agent.removeAllListeners("closed");
      live.agent.close(reason);
    }
    return live;
  }

  private async onAgentClosed(record: SandboxRecord, agent: AgentClient, reason: string, exited?: Promise<string>): Promise<void> {
    if (this.live.get(record.id)?.agent !== agent) return;
    this.live.delete(record.id);
    const state = this.deps.store.get(record.id)?.state;
    if (state !== "running" && state !== "paused") return;
    // Failed at once (requests in flight were just rejected); the reason is refined once the runtime's
    // exit status is known.
    this.deps.store.setState(record.id, "failed", `sandbox died (${reason})`);
    this.deps.metrics.sandboxFailures.inc({ runtime: record.runtime, phase: "run" });
    const runtimeExit = exited ? await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 1000))]) : null;
    const why = `sandbox died (${runtimeExit ?? reason}); ${this.deathCause(record, runtimeExit)}`;
    this.deps.log.warn({ sandbox: record.id, reason: why }, "sandbox died");
    await this.fail(record, why);
  }

  /**
   * A sandbox that cannot be brought back: failed, with the reason. What is left of its runtime is removed
   * (it is dead), but its files stay on disk, readable, until the user deletes it: nothing the user may
   * still want is deleted on the daemon's judgement.
   */
  async fail(record: SandboxRecord, reason: string): Promise<void> {
    this.deps.store.setState(record.id, "failed", reason.slice(0, 4000));
    this.detach(record.id, "sandbox failed");
    const driver = this.deps.drivers.get(record.runtime);
    if (driver) await driver.destroy(this.ref(record.id)).catch((err: Error) => this.deps.log.warn({ sandbox: record.id, err: err.message }, "removing a failed sandbox's runtime failed"));
    await this.leaveNetwork(record);
    await this.deps.filesystem.thaw(record.id).catch(() => {});
    this.updateGauges();
  }

  /** Kills the runtime and removes the sandbox's files. Safe to repeat; concurrent calls share one run. */
  teardown(record: SandboxRecord): Promise<void> {
    const pending = this.tearingDown.get(record.id);
    if (pending) return pending;
    const work = this.destroy(record).finally(() => this.tearingDown.delete(record.id));
    this.tearingDown.set(record.id, work);
    return work;
  }

  private async destroy(record: SandboxRecord): Promise<void> {
    this.live.get(record.id)?.agent.close("sandbox deleted");
    this.live.delete(record.id);
    const driver = this.deps.drivers.get(record.runtime);
    if (driver) await driver.destroy(this.ref(record.id));
    if (record.network) await this.deps.network?.release(record.id, record.network);
    await this.deps.filesystem.remove(record.id);
  }

  /**
   * Resolves once no foreground command runs in the sandbox, or once `capMs` has passed or every command
   * left is past its deadline (its kill is on its way): a hibernation lets commands in flight finish first.
   */
  async commandsDone(id: string, capMs: number): Promise<void> {
    const until = Date.now() + capMs;
    for (;;) {
      const commands = this.activity.get(id)?.commands;
      if (!commands || commands.size === 0) return;
      const now = Date.now();
      const latest = Math.max(...[...commands].map((c) => c.deadline));
      if (now >= until || now >= latest) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Tears down and forgets a sandbox that belongs to nobody (a pool member, a clone that failed). */
  async discard(record: SandboxRecord, what: string): Promise<void> {
    await this.teardown(record).catch((err: Error) => this.deps.log.warn({ sandbox: record.id, err: err.message }, `${what} failed`));
    this.deps.store.delete(record.id);
    this.activity.delete(record.id);
    this.updateGauges();
  }

  runtimeLogTail(id: string): string {
    try {
      const text = readFileSync(join(this.deps.filesystem.paths(id).runtimeDir, "runtime.log"), "utf8");
      return text.trim().split("\n").slice(-5).join(" | ").slice(-2000) || "no runtime output";
    } catch {
      return "no runtime log";
    }
  }

  private deathCause(record: SandboxRecord, runtimeExit: string | null): string {
    const log = this.runtimeLogTail(record.id);
    // The kernel's OOM killer is the one thing that SIGKILLs a runtime we did not stop ourselves.
    // (`runsc run` reports its sandbox's SIGKILL as exit code 137.)
    if (/SIGKILL|code 137\b/.test(runtimeExit ?? "") || /oom|out of memory/i.test(log)) {
      return `most likely its memory limit of ${record.memoryMiB} MiB was exceeded (the kernel OOM-killed it); runtime log: ${log}`;
    }
    return `runtime log: ${log}`;
  }

  updateGauges(): void {
    const counts = this.deps.store.countByState();
    for (const state of SandboxStateSchema.options) this.deps.metrics.sandboxes.set({ state }, counts[state] ?? 0);
  }
}
