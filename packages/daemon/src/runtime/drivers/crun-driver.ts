import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LaunchedSandbox, RuntimeProbe, SandboxLaunchSpec, SandboxRef } from "../driver.js";
import type { CgroupMode } from "../cgroups.js";
import type { Freezer } from "../freezer.js";
import { launchRuntimeProcess } from "../launch-process.js";
import { buildOciSpec, DEFAULT_PATH } from "../oci-spec.js";
import { runCommand } from "../run-command.js";
import { defaultSeccompProfile } from "../seccomp-profile.js";
import { OciDriver } from "./oci-driver.js";

export interface CrunDriverOptions {
  crunPath: string;
  stateRoot: string;
  cgroupMode: CgroupMode;
  /** First host uid/gid of the range the sandbox's user namespace maps to (container root = this). */
  usernsBase: number;
  freezer: Freezer;
}

export const USERNS_SIZE = 65536;
/**
 * inotify instances per uid inside one sandbox. Every crun sandbox's user namespace is owned by host
 * root, so the kernel also charges what a sandbox opens to host root's own limit
 * (fs.inotify.max_user_instances, 128 by default), shared with the host's services and every other
 * sandbox: without a bound inside, one sandbox can take them all.
 */
export const INOTIFY_INSTANCES_PER_UID = 32;

/**
 * Sets the sandbox's user-namespace limits (/proc/sys/user/*, which crun's `sysctl` refuses as "not
 * namespaced") from the host, in the new user namespace, before the agent starts: a createRuntime hook
 * gets the container's state, with its pid, on stdin.
 */
export function userNamespaceLimitsHook(): { path: string; args: string[]; env: string[]; timeout: number } {
  // The pid is cut out of the state with the shell's own builtins: a hook runs on every create's critical
  // path, and each extra process (tr, sed, a subshell) cost a few ms there.
  const script =
    's=; while IFS= read -r l || [ -n "$l" ]; do s="$s$l"; done; ' +
    'case $s in *\\"pid\\":*) ;; *) exit 1 ;; esac; p=${s#*\\"pid\\":}; p=${p#"${p%%[0-9]*}"}; p=${p%%[!0-9]*}; [ -n "$p" ] || exit 1; ' +
    `exec nsenter --user --target "$p" sh -c "echo ${INOTIFY_INSTANCES_PER_UID} > /proc/sys/user/max_inotify_instances"`;
  return { path: "/bin/sh", args: ["sh", "-c", script], env: [`PATH=${DEFAULT_PATH}`], timeout: 10 };
}

/**
 * crun: the fast container tier. Each container runs in its own user namespace (root inside is an
 * unprivileged uid on the host), with a minimal capability set, a default seccomp profile, and the network namespace the daemon made for it.
 */
export class CrunDriver extends OciDriver {
  readonly name = "crun" as const;
  /** No checkpoint: crun here is built without CRIU. */
  readonly capabilities = { pause: true, checkpoint: false, buildSteps: false };

  constructor(private readonly options: CrunDriverOptions) {
    super(options.freezer);
  }

  /** Root inside is the first uid of the sandbox's user namespace on the host. */
  get rootOwner(): number {
    return this.options.usernsBase;
  }

  protected containerId(ref: SandboxRef): string {
    return ref.id;
  }

  async probe(): Promise<RuntimeProbe> {
    const out = await runCommand(this.options.crunPath, ["--version"], { timeoutMs: 10_000 });
    if (out.code !== 0) return { available: false, reason: `${this.options.crunPath} --version failed: ${out.stderr.trim() || "not installed"}`, details: {} };
    const version = /crun version (\S+)/.exec(out.stdout)?.[1] ?? "unknown";
    return { available: true, reason: null, details: { version, cgroups: this.options.cgroupMode } };
  }

  /**
   * crun refuses hybrid cgroup hosts ("cgroups in hybrid mode not supported"): there it runs in a private
   * mount namespace with the cgroup2 mount hidden, which puts it in plain v1 mode.
   */
  private command(args: string[]): [string, string[]] {
    const crun = [this.options.crunPath, "--root", this.options.stateRoot, ...args];
    if (this.options.cgroupMode !== "hybrid") return [crun[0]!, crun.slice(1)];
    const script = 'umount -l /sys/fs/cgroup/unified 2>/dev/null || mount -t tmpfs none /sys/fs/cgroup/unified; exec "$@"';
    return ["unshare", ["-m", "--propagation", "private", "sh", "-c", script, "crun", ...crun]];
  }

  async launch(spec: SandboxLaunchSpec): Promise<LaunchedSandbox> {
    mkdirSync(this.options.stateRoot, { recursive: true });
    const bundle = join(spec.dir, "bundle");
    mkdirSync(bundle, { recursive: true });
    const config = buildOciSpec(spec, {
      // The sandbox's own network namespace (made by the daemon, owned by host root) or an empty one.
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, spec.netnsPath ? { type: "network", path: spec.netnsPath } : { type: "network" }, { type: "user" }, { type: "cgroup" }],
      uidMappings: [{ containerID: 0, hostID: this.options.usernsBase, size: USERNS_SIZE }],
      seccomp: defaultSeccompProfile(),
      hooks: { createRuntime: [userNamespaceLimitsHook()] },
    });
    writeFileSync(join(bundle, "config.json"), JSON.stringify(config, null, 2));
    const [cmd, args] = this.command(["run", "--bundle", bundle, spec.id]);
    return launchRuntimeProcess(cmd, args, spec.dir, spec.agentPath);
  }

  protected async remove(ref: SandboxRef): Promise<void> {
    const [kc, ka] = this.command(["kill", ref.id, "KILL"]);
    await runCommand(kc, ka, { timeoutMs: 10_000 });
    const [dc, da] = this.command(["delete", "--force", ref.id]);
    await runCommand(dc, da, { timeoutMs: 20_000 });
  }
}
