import { chmodSync, lstatSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { SandboxLaunchSpec } from "./driver.js";

export const AGENT_PATH_IN_SANDBOX = "/.stasis/agent";
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Capabilities the agent needs to run commands as other users and manage their files. */
const AGENT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_NET_BIND_SERVICE",
];

export interface OciSpecOptions {
  /** Extra mounts after the defaults. */
  mounts?: object[];
  namespaces: { type: string; path?: string }[];
  uidMappings?: { containerID: number; hostID: number; size: number }[];
  seccomp?: object;
  /** Bind the writable rootfs's own /tmp so /tmp is on disk (runsc would otherwise mount a tmpfs). */
  bindTmp?: boolean;
  /**
   * The process limit is enforced by the agent inside, `perUser` tasks per uid for commands (gVisor; see
   * gvisorProcessLimits), and the host cgroup's pids limit is this higher backstop, not spec.pidsLimit.
   */
  processLimitInside?: { perUser: number; hostPidsLimit: number };
  /** OCI hooks (run by the runtime on the host, with the container's state on stdin). */
  hooks?: Record<string, { path: string; args?: string[]; env?: string[]; timeout?: number }[]>;
}

/** cgroup path shared by every runtime, so the freezer and metrics find sandboxes in one place. */
export function cgroupPathOf(id: string): string {
  return `/stasis/${id}`;
}

/**
 * How gVisor's limits are set. The host cgroup counts the sentry's own threads and one or two host tasks
 * per guest task, and the sentry dies when it cannot create one; each guest task also costs the sandbox
 * ~0.3-0.5 MiB of memory on the host, and a gVisor sandbox over its memory limit dies whole. Measured
 * with runsc 2024-07-29, systrap: 300 sleeping processes took 646 host tasks and 178 MiB; a fork bomb
 * held to 512 tasks took 794 host tasks and peaked at 248 MiB. So inside, the agent holds commands to
 * `perUser` tasks per uid (RLIMIT_NPROC, see packages/agent/nproc.go): the sandbox's pidsLimit, and no
 * more than three tasks per 4 MiB of memory, so that a bomb fails its forks before it fills the memory.
 * The host limit only has to stay out of reach of that: two uids' worth at two host tasks each, plus the
 * sentry's own threads. It remains a backstop against a command that spreads its processes over many
 * uids (which root can): only its own sandbox dies then.
 */
export function gvisorProcessLimits(pidsLimit: number, memoryMiB: number): { perUser: number; hostPidsLimit: number } {
  const perUser = Math.max(16, Math.min(pidsLimit, Math.floor((memoryMiB * 3) / 4)));
  return { perUser, hostPidsLimit: 4 * perUser + 512 };
}

/**
 * With processLimitInside, the agent starts with CAP_SYS_RESOURCE and CAP_SETPCAP as well: the first
 * exempts it from the limit it sets for commands, the second lets it take both out of the bounding
 * set before any command starts, so commands get exactly AGENT_CAPABILITIES.
 */
const LIMITING_AGENT_CAPABILITIES = [...AGENT_CAPABILITIES, "CAP_SYS_RESOURCE", "CAP_SETPCAP"];

/** Builds an OCI runtime spec that starts the guest agent as init with the sandbox's limits. */
export function buildOciSpec(spec: SandboxLaunchSpec, options: OciSpecOptions): object {
  const period = 100_000;
  const memoryBytes = spec.memoryMiB * 1024 * 1024;
  const inside = options.processLimitInside;
  const capabilities = inside ? LIMITING_AGENT_CAPABILITIES : AGENT_CAPABILITIES;
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [AGENT_PATH_IN_SANDBOX],
      // The agent never passes its own environment on to commands.
      env: [`PATH=${DEFAULT_PATH}`, "HOME=/root", "LANG=C.UTF-8", ...(inside ? [`STASIS_NPROC_LIMIT=${inside.perUser}`] : [])],
      cwd: "/",
      capabilities: { bounding: capabilities, effective: capabilities, permitted: capabilities },
      // Off so that setuid programs work (sudo, which E2B's base gives `user`): the boundary is the
      // sandbox, not the uid inside it; anyone who can run code in it can already run it as root.
      noNewPrivileges: false,
      oomScoreAdj: 0,
    },
    root: { path: spec.rootfs, readonly: false },
    ...(options.hooks ? { hooks: options.hooks } : {}),
    hostname: spec.hostname,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: AGENT_PATH_IN_SANDBOX, type: "bind", source: spec.agentPath, options: ["bind", "ro", "nosuid", "nodev"] },
      ...(options.bindTmp ? [{ destination: "/tmp", type: "bind", source: `${spec.rootfs}/tmp`, options: ["rbind", "rw", "nosuid", "nodev"] }] : []),
      ...(options.mounts ?? []),
    ],
    linux: {
      namespaces: options.namespaces,
      ...(options.uidMappings ? { uidMappings: options.uidMappings, gidMappings: options.uidMappings } : {}),
      cgroupsPath: cgroupPathOf(spec.id),
      resources: {
        memory: { limit: memoryBytes, swap: memoryBytes },
        cpu: { quota: Math.round(spec.cpu * period), period },
        pids: { limit: inside ? inside.hostPidsLimit : spec.pidsLimit },
      },
      maskedPaths: ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
      readonlyPaths: ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
      ...(options.seccomp ? { seccomp: options.seccomp } : {}),
    },
  };
}

/**
 * A gVisor sandbox's (and build step's) /tmp is bind-mounted from the host path `${rootfs}/tmp`, and
 * runsc's gofer follows symlinks on the host when it sets up mounts: a template layer with `tmp -> /`
 * would hand the sandbox the host's root. Only a real directory is used; a missing one is made (mode
 * 1777) so the bind has a source. Returns why the sandbox cannot start, or null.
 */
export function prepareBoundTmp(rootfs: string): string | null {
  const tmp = join(rootfs, "tmp");
  try {
    const st = lstatSync(tmp);
    return st.isDirectory() ? null : `/tmp in the template is ${st.isSymbolicLink() ? "a symlink" : "not a directory"}; sandboxes and build steps need /tmp to be a real directory`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") return `cannot check /tmp in the template: ${(err as Error).message}`;
  }
  try {
    mkdirSync(tmp, { mode: 0o1777 });
    chmodSync(tmp, 0o1777); // mkdir's mode goes through the umask
    return null;
  } catch (err) {
    return `cannot create /tmp in the template: ${(err as Error).message}`;
  }
}
