import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LaunchedSandbox, RuntimeDriver, RuntimeProbe, SandboxLaunchSpec } from "../driver.js";
import { launchRuntimeProcess } from "../launch-process.js";
import { buildOciSpec, prepareBoundTmp } from "../oci-spec.js";
import { runningPidFromState } from "../oci-state.js";
import { runCommand } from "../run-command.js";

export interface GvisorDriverOptions {
  runscPath: string;
  /** Where runsc keeps container state (a tmpfs such as /run: runtime state does not outlive a reboot). */
  stateRoot: string;
  /** systrap where supported (runsc >= 2023), ptrace otherwise; null = detect. */
  platform: "systrap" | "ptrace" | null;
}

/** gVisor: every sandbox gets its own user-space kernel (the sentry); the default and strongest tier. */
export class GvisorDriver implements RuntimeDriver {
  readonly name = "gvisor" as const;
  private platform: "systrap" | "ptrace" | null;
  private readonly exits = new Map<string, Promise<string>>();
  private readonly deleting = new Map<string, Promise<void>>();

  constructor(private readonly options: GvisorDriverOptions) {
    this.platform = options.platform;
  }

  async probe(): Promise<RuntimeProbe> {
    const out = await runCommand(this.options.runscPath, ["--version"], { timeoutMs: 10_000 });
    if (out.code !== 0) {
      return { available: false, reason: `${this.options.runscPath} --version failed: ${out.stderr.trim() || "not installed"}`, details: {} };
    }
    const version = /runsc version (\S+)/.exec(out.stdout)?.[1] ?? "unknown";
    this.platform ??= platformFor(version);
    return { available: true, reason: null, details: { version, platform: this.platform } };
  }

  /** runsc's platform flag, for other users of runsc on this host (template build steps). */
  async platformFlag(): Promise<string> {
    if (!this.platform) await this.probe();
    return `--platform=${this.platform ?? "systrap"}`;
  }

  get runscPath(): string {
    return this.options.runscPath;
  }

  private runsc(): string[] {
    return ["--root", this.options.stateRoot, `--platform=${this.platform ?? "systrap"}`, "--network=none", "--overlay2=none"];
  }

  async launch(spec: SandboxLaunchSpec): Promise<LaunchedSandbox> {
    const bundle = await this.writeBundle(spec);
    return this.track(spec.id, launchRuntimeProcess(this.options.runscPath, [...this.runsc(), "run", "--bundle", bundle, spec.id], spec.dir));
  }

  /** Remembers when each runtime process this daemon started exits: a checkpoint is final only then. */
  private track(id: string, launched: LaunchedSandbox): LaunchedSandbox {
    this.exits.set(id, launched.exited);
    void launched.exited.then(() => {
      if (this.exits.get(id) === launched.exited) this.exits.delete(id);
    });
    return launched;
  }

  async checkpoint(id: string, _dir: string, imageDir: string): Promise<void> {
    mkdirSync(imageDir, { recursive: true, mode: 0o700 });
    // Uncompressed: restoring 200 MB takes ~0.5 s instead of ~0.8 s, at the price of a larger image.
    const out = await runCommand(this.options.runscPath, [...this.runsc(), "checkpoint", "--compression=none", "--image-path", imageDir, id], { timeoutMs: 300_000 });
    if (out.code !== 0) throw new Error(`runsc checkpoint failed: ${out.stderr.trim().slice(-2000) || `exit ${out.code}`}`);
    // A checkpointed container stays listed until deleted and would block a restore under its id. The
    // delete takes over a second for a sandbox that was itself restored, so it runs in the background;
    // a restore under the same id waits for it.
    const deleting = this.forget(id).finally(() => {
      if (this.deleting.get(id) === deleting) this.deleting.delete(id);
    });
    this.deleting.set(id, deleting);
  }

  /** Deletes a checkpointed container once its `runsc run` has exited (deleting earlier times out). */
  private async forget(id: string): Promise<void> {
    const exited = this.exits.get(id);
    if (exited) await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    for (let attempt = 0; attempt < 3; attempt++) {
      const del = await runCommand(this.options.runscPath, ["--root", this.options.stateRoot, "delete", "-force", id], { timeoutMs: 20_000 });
      if (del.code === 0) return;
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
    }
  }

  async restore(spec: SandboxLaunchSpec, imageDir: string): Promise<LaunchedSandbox> {
    await this.deleting.get(spec.id);
    const bundle = await this.writeBundle(spec);
    return this.track(spec.id, launchRuntimeProcess(this.options.runscPath, [...this.runsc(), "restore", "--image-path", imageDir, "--bundle", bundle, spec.id], spec.dir));
  }

  private async writeBundle(spec: SandboxLaunchSpec): Promise<string> {
    if (!this.platform) await this.probe();
    mkdirSync(this.options.stateRoot, { recursive: true });
    const bundle = join(spec.dir, "bundle");
    mkdirSync(bundle, { recursive: true });
    const tmpProblem = prepareBoundTmp(spec.rootfs);
    if (tmpProblem) throw new Error(tmpProblem);
    const config = buildOciSpec(spec, { namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network" }], bindTmp: true });
    writeFileSync(join(bundle, "config.json"), JSON.stringify(config, null, 2));
    return bundle;
  }

  async destroy(id: string): Promise<void> {
    const base = ["--root", this.options.stateRoot];
    await runCommand(this.options.runscPath, [...base, "kill", id, "KILL"], { timeoutMs: 10_000 });
    await runCommand(this.options.runscPath, [...base, "delete", "-force", id], { timeoutMs: 20_000 });
  }

  async hostPid(id: string): Promise<number | null> {
    const out = await runCommand(this.options.runscPath, ["--root", this.options.stateRoot, "state", id], { timeoutMs: 10_000 });
    return out.code === 0 ? runningPidFromState(out.stdout) : null;
  }
}

/** systrap arrived in 2023; older packaged builds (bookworm's 2022 runsc) only know ptrace. */
export function platformFor(version: string): "systrap" | "ptrace" {
  const date = /(\d{8})/.exec(version)?.[1];
  return date && date >= "20230601" ? "systrap" : "ptrace";
}
