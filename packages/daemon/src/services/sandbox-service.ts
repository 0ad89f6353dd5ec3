import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { CreateSandboxParams, ListSandboxesQuery, Runtime, Sandbox, SandboxList } from "@stasis/protocol";
import { AgentClient } from "../agent-client/agent-client.js";
import type { DaemonConfig } from "../config/config.js";
import { ApiError } from "../errors/api-error.js";
import type { Metrics } from "../observability/metrics.js";
import type { RuntimeDriver, RuntimeProbe } from "../runtime/driver.js";
import { FifoPair } from "../runtime/fifo-channel.js";
import type { Freezer } from "../runtime/freezer.js";
import { cgroupPathOf } from "../runtime/oci-spec.js";
import type { SandboxFilesystem } from "../storage/sandbox-filesystem.js";
import type { SandboxRecord, SandboxStore } from "../store/sandbox-store.js";
import { TemplateNotFoundError, type TemplateStore } from "../templates/template-store.js";

const AGENT_READY_TIMEOUT_MS = 15_000;
const EXPIRY_SWEEP_MS = 1_000;

/** A sandbox whose runtime is up and whose agent channel is open. */
export interface LiveSandbox {
  record: SandboxRecord;
  agent: AgentClient;
}

export interface SandboxServiceDeps {
  config: DaemonConfig;
  store: SandboxStore;
  drivers: Map<Runtime, RuntimeDriver>;
  filesystem: SandboxFilesystem;
  templates: TemplateStore;
  freezer: Freezer;
  metrics: Metrics;
  log: Logger;
}

/**
 * Sandbox lifecycle: create, reattach after a restart, expire, delete. The store holds the requested and
 * observed state; this service holds the live agent channels.
 */
export class SandboxService {
  private readonly live = new Map<string, LiveSandbox>();
  private readonly probes = new Map<Runtime, RuntimeProbe>();
  /** Resumes in flight, so concurrent requests to a paused sandbox thaw it once. */
  private readonly resuming = new Map<string, Promise<void>>();
  /** Teardowns in flight: delete, expiry and death can race for the same sandbox. */
  private readonly tearingDown = new Map<string, Promise<void>>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly deps: SandboxServiceDeps) {}

  /** Probes runtimes, reattaches to sandboxes that survived a daemon restart, starts the expiry sweeper. */
  async start(): Promise<void> {
    for (const [name, driver] of this.deps.drivers) {
      const probe = await driver.probe();
      this.probes.set(name, probe);
      this.deps.log.info({ runtime: name, ...probe }, probe.available ? "runtime available" : "runtime unavailable");
    }
    await this.reconcile();
    this.sweeper = setInterval(() => void this.expire().catch((err: Error) => this.deps.log.error({ err }, "expiry sweep failed")), EXPIRY_SWEEP_MS);
    this.sweeper.unref();
    this.updateGauges();
  }

  /** Stops the sweeper and closes channels. Sandboxes keep running and are reattached on the next start. */
  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    for (const live of this.live.values()) {
      live.agent.removeAllListeners("closed");
      live.agent.close("daemon stopping");
    }
    this.live.clear();
  }

  runtimes(): { name: Runtime; available: boolean; reason: string | null }[] {
    return [...this.deps.drivers.keys()].map((name) => {
      const p = this.probes.get(name);
      return { name, available: p?.available ?? false, reason: p?.reason ?? "not probed" };
    });
  }

  async create(params: CreateSandboxParams): Promise<Sandbox> {
    const runtime = params.runtime ?? this.deps.config.defaultRuntime;
    const driver = this.deps.drivers.get(runtime);
    const probe = this.probes.get(runtime);
    if (!driver || !probe?.available) {
      throw new ApiError("runtime_unavailable", `runtime '${runtime}' is not usable here: ${probe?.reason ?? "not configured"}; run \`stasis doctor\``);
    }
    if (!this.deps.templates.manifest(params.template)) {
      throw new ApiError("template_not_found", `template '${params.template}' is not built: run \`stasis template build ${params.template}\``);
    }
    // In-flight creates are counted through their `creating` records.
    const counts = this.deps.store.countByState();
    const active = (counts.running ?? 0) + (counts.creating ?? 0);
    if (active >= this.deps.config.maxSandboxes) {
      throw new ApiError("capacity_exceeded", `the daemon runs its maximum of ${this.deps.config.maxSandboxes} sandboxes`);
    }
    const started = performance.now();
    const now = Date.now();
    const record: SandboxRecord = {
      id: `sbx_${randomBytes(10).toString("hex").slice(0, 16)}`,
      template: params.template,
      runtime,
      state: "creating",
      stateReason: null,
      cpu: params.cpu,
      memoryMiB: params.memoryMiB,
      diskMiB: params.diskMiB,
      env: params.env,
      metadata: params.metadata,
      timeoutMs: params.timeoutMs,
      createdAt: now,
      expiresAt: now + params.timeoutMs,
      standbySince: null,
    };
    const log = this.deps.log.child({ sandbox: record.id, runtime });
    this.deps.store.insert(record);
    try {
      const owner = runtime === "crun" ? this.deps.config.usernsBase : 0;
      const lower = await this.deps.templates.rootfs(record.template, owner, (line) => log.info(line));
      const paths = await this.deps.filesystem.create(record.id, lower, record.diskMiB, owner);
      const launched = await driver.launch({
        id: record.id,
        dir: paths.runtimeDir,
        rootfs: paths.rootfs,
        agentPath: this.deps.config.agentPath,
        cpu: record.cpu,
        memoryMiB: record.memoryMiB,
        pidsLimit: this.deps.config.pidsLimit,
        hostname: "sandbox",
      });
      const agent = new AgentClient(launched.channel, log);
      const exitedEarly = launched.exited.then((reason) => {
        throw new ApiError("sandbox_failed", `sandbox exited during start (${reason}): ${this.runtimeLogTail(record.id)}`);
      });
      await Promise.race([agent.waitReady(AGENT_READY_TIMEOUT_MS), exitedEarly]);
      exitedEarly.catch(() => {});
      record.state = "running";
      this.deps.store.setState(record.id, "running");
      this.attach(record, agent, launched.exited);
      this.deps.metrics.sandboxCreate.observe({ runtime }, (performance.now() - started) / 1000);
      log.info({ ms: Math.round(performance.now() - started), agent: agent.version }, "sandbox created");
      return toSandbox(record);
    } catch (err) {
      this.deps.metrics.sandboxFailures.inc({ runtime, phase: "create" });
      log.error({ err }, "sandbox create failed");
      await this.teardown(record).catch((e: Error) => log.error({ err: e }, "cleanup after failed create failed"));
      this.deps.store.delete(record.id);
      if (err instanceof ApiError) throw err;
      if (err instanceof TemplateNotFoundError) throw new ApiError("template_not_found", err.message);
      throw new ApiError("sandbox_failed", `sandbox failed to start: ${(err as Error).message}`);
    } finally {
      this.updateGauges();
    }
  }

  get(id: string): Sandbox {
    return toSandbox(this.record(id));
  }

  list(query: ListSandboxesQuery & { limit: number }): SandboxList {
    let after: { createdAt: number; id: string } | undefined;
    if (query.cursor) {
      const [at, id] = Buffer.from(query.cursor, "base64url").toString().split(":");
      if (!at || !id || !Number.isInteger(Number(at))) throw new ApiError("invalid_request", "malformed cursor");
      after = { createdAt: Number(at), id };
    }
    const metadata: Record<string, string> = {};
    if (query.metadata) {
      for (const [k, v] of new URLSearchParams(query.metadata)) metadata[k] = v;
    }
    const rows = this.deps.store.list({ state: query.state, metadata, limit: query.limit + 1, after });
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    const nextCursor = rows.length > query.limit && last ? Buffer.from(`${last.createdAt}:${last.id}`).toString("base64url") : null;
    return { sandboxes: page.map(toSandbox), nextCursor };
  }

  setTimeout(id: string, timeoutMs: number): Sandbox {
    const record = this.record(id);
    if (record.state !== "running") throw new ApiError("sandbox_not_running", `sandbox ${id} is ${record.state}`);
    this.deps.store.setExpiry(id, timeoutMs, Date.now() + timeoutMs);
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    const record = this.record(id);
    if (record.state === "creating") {
      throw new ApiError("sandbox_not_running", `sandbox ${id} is still being created; delete it once it is running`);
    }
    this.deps.store.setState(id, "stopping");
    await this.teardown(record);
    this.deps.store.delete(id);
    this.deps.log.info({ sandbox: id }, "sandbox deleted");
    this.updateGauges();
  }

  /**
   * The live sandbox for a request that needs its agent. A paused sandbox is woken first, so clients never
   * need to know it slept; sandboxes in other states are refused.
   */
  async acquire(id: string): Promise<LiveSandbox> {
    if (this.record(id).state === "paused") await this.resume(id);
    const record = this.record(id);
    const live = this.live.get(id);
    if (record.state !== "running" || !live) {
      throw new ApiError("sandbox_not_running", `sandbox ${id} is ${record.state}${record.stateReason ? ` (${record.stateReason})` : ""}`);
    }
    return live;
  }

  /** Freezes a running sandbox in RAM. Its lifetime clock stops until it is resumed. */
  async pause(id: string): Promise<Sandbox> {
    const record = this.record(id);
    if (record.state === "paused") return toSandbox(record);
    if (record.state !== "running" || !this.live.has(id)) throw new ApiError("sandbox_not_running", `sandbox ${id} is ${record.state}`);
    await this.deps.freezer.freeze(cgroupPathOf(id));
    this.deps.store.setStandby(id, "paused", Date.now(), record.expiresAt);
    this.deps.log.info({ sandbox: id }, "sandbox paused");
    this.updateGauges();
    return this.get(id);
  }

  /** Thaws a paused sandbox; concurrent callers share one thaw. */
  async resume(id: string): Promise<Sandbox> {
    const pending = this.resuming.get(id);
    if (pending) await pending;
    else {
      const work = this.thaw(id).finally(() => this.resuming.delete(id));
      this.resuming.set(id, work);
      await work;
    }
    return this.get(id);
  }

  private async thaw(id: string): Promise<void> {
    const record = this.record(id);
    if (record.state === "running") return;
    const live = this.live.get(id);
    if (record.state !== "paused" || !live) throw new ApiError("sandbox_not_running", `sandbox ${id} is ${record.state}`);
    await this.deps.freezer.thaw(cgroupPathOf(id));
    const now = Date.now();
    // Standby does not count against the lifetime: push the end back by the time spent paused.
    const expiresAt = record.expiresAt === null ? null : record.expiresAt + (now - (record.standbySince ?? now));
    this.deps.store.setStandby(id, "running", null, expiresAt);
    this.updateGauges();
    // An agent reattached while frozen has not been heard from yet.
    if (!live.agent.version) await live.agent.waitReady(5_000);
  }

  private record(id: string): SandboxRecord {
    const record = this.deps.store.get(id);
    if (!record) throw new ApiError("sandbox_not_found", `no sandbox '${id}'`);
    return record;
  }

  /** `exited` is known only for sandboxes this daemon process started (not for reattached ones). */
  private attach(record: SandboxRecord, agent: AgentClient, exited?: Promise<string>): void {
    this.live.set(record.id, { record, agent });
    // A spare shell for the commonest request (sh -c with the sandbox's env, as root): spawning a process
    // inside gVisor costs milliseconds, so the agent keeps one started ahead of time.
    agent
      .request("prewarm", { env: record.env, user: "root" })
      .catch((err: Error) => this.deps.log.debug({ sandbox: record.id, err: err.message }, "agent keeps no spare shell"));
    agent.once("closed", (reason: string) => {
      this.onAgentClosed(record, agent, reason, exited).catch((err: Error) => this.deps.log.error({ err, sandbox: record.id }, "handling a dead sandbox failed"));
    });
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
    this.deps.store.setState(record.id, "failed", why);
    await this.teardown(record).catch((err: Error) => this.deps.log.error({ err }, "cleanup of dead sandbox failed"));
    this.updateGauges();
  }

  /** Kills the runtime and removes the sandbox's files. Safe to repeat; concurrent calls share one run. */
  private teardown(record: SandboxRecord): Promise<void> {
    const pending = this.tearingDown.get(record.id);
    if (pending) return pending;
    const work = this.destroy(record).finally(() => this.tearingDown.delete(record.id));
    this.tearingDown.set(record.id, work);
    return work;
  }

  private async destroy(record: SandboxRecord): Promise<void> {
    const live = this.live.get(record.id);
    this.live.delete(record.id);
    live?.agent.close("sandbox deleted");
    // Frozen processes cannot die: thaw before killing.
    if (await this.deps.freezer.isFrozen(cgroupPathOf(record.id))) {
      await this.deps.freezer.thaw(cgroupPathOf(record.id)).catch((err: Error) => this.deps.log.warn({ err }, "thaw before teardown failed"));
    }
    const driver = this.deps.drivers.get(record.runtime);
    if (driver) await driver.destroy(record.id, this.deps.filesystem.paths(record.id).runtimeDir);
    await this.deps.filesystem.remove(record.id);
  }

  /** After a restart: reattach to every sandbox whose runtime still runs; mark the others failed. */
  private async reconcile(): Promise<void> {
    for (const record of this.deps.store.live()) {
      const log = this.deps.log.child({ sandbox: record.id });
      const finish = async (state: "stopped" | "failed", reason: string) => {
        this.deps.store.setState(record.id, state, reason);
        await this.teardown(record).catch((err: Error) => log.error({ err }, "teardown after restart failed"));
      };
      const driver = this.deps.drivers.get(record.runtime);
      if (record.state === "stopping") {
        // A delete or expiry was under way: finish tearing down; a retried DELETE removes the record.
        await finish("stopped", "stopped while the daemon restarted");
        continue;
      }
      if ((record.state !== "running" && record.state !== "paused") || !driver) {
        await finish("failed", `daemon stopped while the sandbox was ${record.state}`);
        continue;
      }
      const paths = this.deps.filesystem.paths(record.id);
      // A frozen sandbox cannot answer the runtime's state query: look at its cgroup instead.
      const alive =
        record.state === "paused"
          ? await this.deps.freezer.hasProcesses(cgroupPathOf(record.id))
          : (await driver.hostPid(record.id, paths.runtimeDir)) !== null;
      if (!alive) {
        log.warn("sandbox lost while the daemon was down; marked failed");
        await finish("failed", "the sandbox was not running when the daemon restarted (host reboot or runtime crash)");
        continue;
      }
      let agent: AgentClient | null = null;
      try {
        agent = new AgentClient(new FifoPair(paths.runtimeDir).openForDaemon(), log);
        // A paused sandbox stays frozen and cannot answer: its agent is checked when it is resumed.
        if (record.state === "running") await agent.waitReady(5_000);
        this.attach(record, agent);
        log.info({ state: record.state }, "reattached to sandbox");
      } catch (err) {
        agent?.close("reattach failed");
        log.error({ err }, "reattach failed; marked failed");
        await finish("failed", `could not reattach after a daemon restart: ${(err as Error).message}`);
      }
    }
  }

  private async expire(): Promise<void> {
    const now = Date.now();
    for (const live of [...this.live.values()]) {
      const record = this.deps.store.get(live.record.id);
      if (!record || record.state !== "running" || record.expiresAt === null || record.expiresAt > now) continue;
      this.deps.log.info({ sandbox: record.id }, "sandbox lifetime reached; stopping");
      this.deps.store.setState(record.id, "stopping");
      try {
        await this.teardown(record);
        this.deps.store.setState(record.id, "stopped", `lifetime timeout of ${record.timeoutMs} ms reached`);
      } catch (err) {
        this.deps.log.error({ err, sandbox: record.id }, "stopping an expired sandbox failed");
        this.deps.store.setState(record.id, "failed", `lifetime reached, but stopping it failed: ${(err as Error).message}`);
      }
      this.updateGauges();
    }
  }

  private runtimeLogTail(id: string): string {
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
    for (const state of ["creating", "running", "paused", "stopping", "stopped", "failed"]) this.deps.metrics.sandboxes.set({ state }, counts[state] ?? 0);
  }

  info(): { total: number; running: number; max: number } {
    const counts = this.deps.store.countByState();
    return {
      total: Object.values(counts).reduce((a, b) => a + b, 0),
      running: counts.running ?? 0,
      max: this.deps.config.maxSandboxes,
    };
  }
}

function toSandbox(r: SandboxRecord): Sandbox {
  return {
    id: r.id,
    template: r.template,
    runtime: r.runtime,
    state: r.state,
    stateReason: r.stateReason,
    cpu: r.cpu,
    memoryMiB: r.memoryMiB,
    diskMiB: r.diskMiB,
    env: r.env,
    metadata: r.metadata,
    timeoutMs: r.timeoutMs,
    createdAt: new Date(r.createdAt).toISOString(),
    // In standby the lifetime clock stands still, so the sandbox has no expiry until it runs again.
    expiresAt: r.expiresAt === null || r.standbySince !== null ? null : new Date(r.expiresAt).toISOString(),
  };
}
