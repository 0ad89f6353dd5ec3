import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { CreateSandboxRequestSchema, type CreateSandboxParams, type CreateSandboxRequest, type Runtime } from "@stasis/protocol";
import { loadConfig, type DaemonConfig } from "../../../config/config.js";
import { Metrics } from "../../../observability/metrics.js";
import type { RuntimeDriver } from "../../../runtime/driver.js";
import { FakeDriver, FakeHost } from "../../../runtime/drivers/fake-driver.js";
import { StepFaults } from "../../../runtime/drivers/fake-faults.js";
import { Database } from "../../../store/database.js";
import { SandboxStore } from "../../../store/sandbox-store.js";
import { SandboxService } from "../../sandbox-service.js";
import { execToExit } from "../agent-tasks.js";
import { FakeDisks, FakeMounts } from "./fake-disks.js";
import { FakeTemplates } from "./fake-templates.js";

/** The one place a test store is opened: one connection per daemon, as a real daemon has. */
export function openStore(path: string): { store: SandboxStore; database: Database } {
  const database = new Database(path);
  return { store: new SandboxStore(database), database };
}

export interface DaemonOptions {
  /** Overrides of the configuration (warmPools, maxSandboxes, …). */
  config?: Partial<DaemonConfig>;
  /** Without the gvisor (checkpointing) fake: a daemon whose drivers lack a runtime. */
  gvisor?: boolean;
  /** Whether probe says the gvisor fake is available (default true). */
  available?: boolean;
  /** Whether to call start() (probe, reconcile, sweeper); default true. */
  start?: boolean;
}

/** One daemon process: its service, its own store connection, driver objects and faults. */
export interface Daemon {
  service: SandboxService;
  store: SandboxStore;
  database: Database;
  config: DaemonConfig;
  metrics: Metrics;
  /** The gvisor stand-in: pause and checkpoint. */
  driver: FakeDriver;
  /** The crun stand-in: pause, no checkpoint. */
  crun: FakeDriver;
  disks: FakeDisks;
  /** Shared by its driver and its disks: a crash point in either kills this daemon. */
  faults: StepFaults<string>;
}

/**
 * A fake host for lifecycle tests: sandboxes (FakeHost), a mount table, disk files, templates and the
 * SQLite store file all outlive the daemons started over them, so a test can crash one daemon at any step
 * and start another that reconciles.
 */
export class TestHost {
  readonly dir = mkdtempSync(join(tmpdir(), "stasis-lifecycle-"));
  readonly host = new FakeHost();
  readonly mounts = new FakeMounts();
  readonly templates = new FakeTemplates(join(this.dir, "templates"));
  private readonly daemons: Daemon[] = [];

  get storePath(): string {
    return join(this.dir, "sandboxes.sqlite");
  }

  async startDaemon(options: DaemonOptions = {}): Promise<Daemon> {
    const config: DaemonConfig = {
      ...loadConfig({ STASIS_DATA_DIR: this.dir, STASIS_API_KEY: "k-0123456789abcdef", STASIS_RUN_DIR: join(this.dir, "run"), STASIS_AGENT_PATH: join(this.dir, "no-agent") }),
      hibernateParallelism: 2,
      createParallelism: 4,
      ...options.config,
    };
    const faults = new StepFaults<string>();
    const driver = new FakeDriver(this.host, { name: "gvisor", faults, available: options.available ?? true });
    const crun = new FakeDriver(this.host, { name: "crun", checkpoint: false, rootOwner: config.usernsBase, faults });
    const drivers = new Map<Runtime, RuntimeDriver>([["crun", crun]]);
    if (options.gvisor !== false) drivers.set("gvisor", driver);
    const disks = new FakeDisks(join(this.dir, "sandboxes"), this.mounts, faults);
    const { store, database } = openStore(this.storePath);
    const metrics = new Metrics();
    const service = new SandboxService({ config, store, drivers, filesystem: disks, templates: this.templates, metrics, log: pino({ level: "silent" }) });
    const daemon: Daemon = { service, store, database, config, metrics, driver, crun, disks, faults };
    this.daemons.push(daemon);
    if (options.start !== false) await service.start();
    return daemon;
  }

  /** A clean restart: the old daemon closes its channels (sandboxes keep running) and a new one reconciles. */
  async restart(old: Daemon, options: DaemonOptions = {}): Promise<Daemon> {
    old.service.stop();
    return this.startDaemon(options);
  }

  /**
   * The old daemon died (at a crash point, or anywhere): its channels go quiet at once, so nothing it still
   * has in flight reaches a sandbox or hears from one, and its sweeper timer is cleared as the process's
   * would be. A new daemon then starts over the same store and host, and reconciles.
   */
  async restartAfterCrash(old: Daemon, options: DaemonOptions = {}): Promise<Daemon> {
    this.host.cutChannels();
    old.service.stop();
    return this.startDaemon(options);
  }

  /** The machine rebooted: sandboxes and mounts are gone, files stay. No daemon survives it. */
  reboot(): void {
    this.host.cutChannels();
    for (const d of this.daemons) d.service.stop();
    this.host.reboot();
    this.mounts.reboot();
  }

  close(): void {
    for (const d of this.daemons) {
      d.service.stop();
      d.database.close();
    }
    this.host.reboot();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function params(request: CreateSandboxRequest = {}): CreateSandboxParams {
  return CreateSandboxRequestSchema.parse(request);
}

/** Runs a shell script in the sandbox through the daemon (waking it if it sleeps), to its exit. */
export async function run(service: SandboxService, id: string, script: string, timeoutMs = 2_000): Promise<{ code: number | null; output: string }> {
  const live = await service.acquire(id);
  return execToExit(live.agent, { cmd: ["/bin/sh", "-c", script], env: {}, user: "root" }, timeoutMs);
}

/** Increments the sandbox's in-memory counter through the daemon; returns the new value. */
export async function incr(service: SandboxService, id: string): Promise<number> {
  const r = await run(service, id, "incr");
  if (r.code !== 0) throw new Error(`incr exited with ${r.code}: ${r.output}`);
  return Number(r.output.trim());
}

/** A sandbox with state in memory: counter 2 and a background process (tag "bg") that runs until killed. */
export async function busySandbox(service: SandboxService, request: CreateSandboxRequest = {}): Promise<{ id: string; pid: number }> {
  const { id } = await service.create(params(request));
  await incr(service, id);
  await incr(service, id);
  const live = await service.acquire(id);
  const { pid } = await live.agent.exec({ cmd: ["/bin/sh", "-c", "sleep infinity"], env: {}, tag: "bg", stdin: false, subscribe: false, window: 0 });
  return { id, pid };
}

/** Whether the background process `busySandbox` started still runs in the sandbox. */
export async function backgroundRunning(service: SandboxService, id: string, pid: number): Promise<boolean> {
  const live = await service.acquire(id);
  const { processes } = await live.agent.ps();
  return processes.some((p) => p.pid === pid && p.running && p.tag === "bg");
}
