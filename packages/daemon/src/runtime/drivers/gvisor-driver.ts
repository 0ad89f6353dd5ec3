import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BuildStepRunner, BuildStepSpec, Checkpointable, LaunchedSandbox, RuntimeProbe, SandboxLaunchSpec, SandboxRef } from "../driver.js";
import type { CheckpointImage } from "../checkpoint-image.js";
import type { Freezer } from "../freezer.js";
import { launchRuntimeProcess } from "../launch-process.js";
import { buildOciSpec, gvisorProcessLimits, prepareBoundTmp } from "../oci-spec.js";
import { crashPoint } from "../crash-point.js";
import { runCommand, runOutliving } from "../run-command.js";
import { ContainerIds } from "./container-ids.js";
import { removeStaleBuildContainers, runBuildStep } from "./gvisor-build-steps.js";
import { OciDriver } from "./oci-driver.js";

export interface GvisorDriverOptions {
  runscPath: string;
  /** Where runsc keeps container state (a tmpfs such as /run: runtime state does not outlive a reboot). */
  stateRoot: string;
  /** Where runsc keeps template build steps' container state (apart, so stale ones are found by id). */
  buildStateRoot: string;
  /** systrap where supported (runsc >= 2023), ptrace otherwise; null = detect. */
  platform: "systrap" | "ptrace" | null;
  freezer: Freezer;
}

/**
 * A test hook (tests/e2e/crash.test.ts): `STASIS_TEST_DELETE_DELAY_MS` holds back the background delete of
 * a checkpointed incarnation, as a loaded host may, so that the next incarnation is already running when it
 * comes. Unset in production.
 */
const DELETE_DELAY_MS = Number(process.env.STASIS_TEST_DELETE_DELAY_MS ?? 0) || 0;

/** gVisor: every sandbox gets its own user-space kernel (the sentry); the default and strongest tier. */
export class GvisorDriver extends OciDriver implements Checkpointable, BuildStepRunner {
  readonly name = "gvisor" as const;
  readonly capabilities = { pause: true, checkpoint: true, buildSteps: true };
  /** The sentry, not a user namespace, is the boundary: the sandbox's files are owned by host root. */
  readonly rootOwner = 0;
  private platform: "systrap" | "ptrace" | null;
  private version = "unknown";
  /** When each runtime process this daemon started exits, by container id: a checkpoint is final only then. */
  private readonly exits = new Map<string, Promise<string>>();

  constructor(private readonly options: GvisorDriverOptions) {
    super(options.freezer);
    this.platform = options.platform;
  }

  async probe(): Promise<RuntimeProbe> {
    const out = await runCommand(this.options.runscPath, ["--version"], { timeoutMs: 10_000 });
    if (out.code !== 0) {
      return { available: false, reason: `${this.options.runscPath} --version failed: ${out.stderr.trim() || "not installed"}`, details: {} };
    }
    this.version = /runsc version (\S+)/.exec(out.stdout)?.[1] ?? "unknown";
    this.platform ??= platformFor(this.version);
    return { available: true, reason: null, details: { version: this.version, platform: this.platform } };
  }

  imageFormat(): string {
    return `runsc ${this.version === "unknown" ? "?" : this.version} ${this.platform ?? "?"}`;
  }

  protected containerId(ref: SandboxRef): string {
    return new ContainerIds(ref).current();
  }

  /**
   * `--network=sandbox`: the sentry's own network stack takes over the namespace's veth. Open TCP
   * connections cannot be saved in a checkpoint: `--net-disconnect-ok` resets them at hibernation (as a
   * peer would see after a long pause) instead of refusing to hibernate a sandbox that ever connected.
   */
  private runsc(netnsPath: string | null = null): string[] {
    const network = netnsPath ? ["--network=sandbox", "--net-disconnect-ok"] : ["--network=none"];
    return ["--root", this.options.stateRoot, `--platform=${this.platform ?? "systrap"}`, ...network, "--overlay2=none"];
  }

  /**
   * The runsc command line for a start. With a network, runsc refuses to run in what it takes for the
   * host's namespace (it checks a /proc/sys/net file every namespace has on this kernel): hiding
   * /proc/sys/net in a private mount namespace of the CLI gets past it.
   */
  private startCommand(spec: SandboxLaunchSpec, args: string[]): [string, string[]] {
    const runsc = [this.options.runscPath, ...this.runsc(spec.netnsPath), ...args];
    if (!spec.netnsPath) return [runsc[0]!, runsc.slice(1)];
    return ["unshare", ["-m", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none /proc/sys/net && exec "$@"', "sh", ...runsc]];
  }

  async launch(spec: SandboxLaunchSpec): Promise<LaunchedSandbox> {
    new ContainerIds(spec).reset();
    const bundle = await this.writeBundle(spec, spec.id);
    const [cmd, args] = this.startCommand(spec, ["run", "--bundle", bundle, spec.id]);
    return this.track(spec.id, await launchRuntimeProcess(cmd, args, spec.dir, spec.agentPath));
  }

  private track(containerId: string, launched: LaunchedSandbox): LaunchedSandbox {
    this.exits.set(containerId, launched.exited);
    void launched.exited.then(() => {
      if (this.exits.get(containerId) === launched.exited) this.exits.delete(containerId);
    });
    return launched;
  }

  async checkpoint(ref: SandboxRef, image: CheckpointImage): Promise<void> {
    const id = this.containerId(ref);
    const cgroup = this.cgroupPath(ref);
    // The checkpoint runs inside the sandbox's kernel: a frozen sandbox must thaw for it.
    const wasFrozen = await this.freezer.isFrozen(cgroup);
    if (wasFrozen) await this.freezer.thaw(cgroup);
    const partial = image.beginWrite();
    // Uncompressed: restoring 200 MB takes ~0.5 s instead of ~0.8 s, at the price of a larger image.
    // The writer outlives a daemon killed meanwhile and leaves a marker once runsc says the image is whole.
    const writing = runOutliving(this.options.runscPath, [...this.runsc(), "checkpoint", "--compression=none", "--image-path", partial, id], {
      pidFile: image.writerPidPath,
      doneFile: image.wholeMarkerPath,
      logFile: join(ref.dir, "checkpoint.log"),
      timeoutMs: 300_000,
    });
    crashPoint("hibernate.writing");
    const out = await writing;
    if (out.code !== 0) {
      image.discardPartial();
      if (wasFrozen && (await this.freezer.hasProcesses(cgroup))) await this.freezer.freeze(cgroup).catch(() => {});
      throw new Error(`runsc checkpoint failed: ${out.output.trim().slice(-2000) || `exit ${out.code}`}`);
    }
    // A checkpointed container stays listed until deleted. Restores start a new incarnation under a fresh
    // id, so this delete (over a second for a container that was itself restored) runs in the background.
    void this.forget(ref, id);
  }

  /** Deletes a checkpointed container once its `runsc run` has exited (deleting earlier times out). */
  private async forget(ref: SandboxRef, id: string): Promise<void> {
    const exited = this.exits.get(id);
    if (exited) await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (DELETE_DELAY_MS > 0) await new Promise((r) => setTimeout(r, DELETE_DELAY_MS));
    const forgotten = () => {
      try {
        new ContainerIds(ref).forgotten(id);
      } catch {
        // The sandbox's folder is gone (deleted meanwhile): nothing left to note.
      }
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      // runsc takes an id prefix: with this container's state gone, `delete sbx_x` would find the next
      // incarnation, `sbx_x-1`, and kill it (a delete late enough did, on a wake right after a hibernation).
      if (!this.hasState(id)) return forgotten();
      const del = await runCommand(this.options.runscPath, ["--root", this.options.stateRoot, "delete", "-force", id], { timeoutMs: 20_000 });
      if (del.code === 0 || /not exist|cannot load container/i.test(del.stderr)) return forgotten();
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
    }
  }

  /** Whether runsc keeps state for exactly container `id` (files `<id>_sandbox:<sandbox id>.state`). */
  private hasState(id: string): boolean {
    try {
      return readdirSync(this.options.stateRoot).some((f) => f.startsWith(`${id}_sandbox:`) && f.endsWith(".state"));
    } catch {
      return false;
    }
  }

  async restore(spec: SandboxLaunchSpec, image: CheckpointImage): Promise<LaunchedSandbox> {
    if (!image.isComplete()) throw new Error(`no complete checkpoint image at ${image.path}`);
    const id = new ContainerIds(spec).startIncarnation();
    const bundle = await this.writeBundle(spec, id);
    const [cmd, args] = this.startCommand(spec, ["restore", "--image-path", image.path, "--bundle", bundle, id]);
    return this.track(id, await launchRuntimeProcess(cmd, args, spec.dir, spec.agentPath));
  }

  private async writeBundle(spec: SandboxLaunchSpec, containerId: string): Promise<string> {
    if (!this.platform) await this.probe();
    mkdirSync(this.options.stateRoot, { recursive: true });
    const bundle = join(spec.dir, "bundle");
    mkdirSync(bundle, { recursive: true });
    const tmpProblem = prepareBoundTmp(spec.rootfs);
    if (tmpProblem) throw new Error(tmpProblem);
    const config = buildOciSpec(
      { ...spec, id: containerId },
      {
        namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, spec.netnsPath ? { type: "network", path: spec.netnsPath } : { type: "network" }],
        bindTmp: true,
        // The host limit would kill the sentry itself: the agent enforces the limit inside instead.
        processLimitInside: gvisorProcessLimits(spec.pidsLimit, spec.memoryMiB),
      },
    );
    writeFileSync(join(bundle, "config.json"), JSON.stringify(config, null, 2));
    return bundle;
  }

  protected async remove(ref: SandboxRef): Promise<void> {
    const base = ["--root", this.options.stateRoot];
    for (const id of new ContainerIds(ref).all()) {
      await runCommand(this.options.runscPath, [...base, "kill", id, "KILL"], { timeoutMs: 10_000 });
      await runCommand(this.options.runscPath, [...base, "delete", "-force", id], { timeoutMs: 20_000 });
    }
  }

  async runStep(spec: BuildStepSpec): Promise<{ code: number | null; reason: string }> {
    if (!this.platform) await this.probe();
    return runBuildStep({ runscPath: this.options.runscPath, stateRoot: this.options.buildStateRoot, platformFlag: `--platform=${this.platform ?? "systrap"}` }, spec);
  }

  removeStaleSteps(): Promise<string[]> {
    return removeStaleBuildContainers({ runscPath: this.options.runscPath, stateRoot: this.options.buildStateRoot });
  }
}

/** systrap arrived in 2023; older packaged builds (bookworm's 2022 runsc) only know ptrace. */
export function platformFor(version: string): "systrap" | "ptrace" {
  const date = /(\d{8})/.exec(version)?.[1];
  return date && date >= "20230601" ? "systrap" : "ptrace";
}
