import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BuildStepSpec } from "../driver.js";
import { DEFAULT_PATH, prepareBoundTmp } from "../oci-spec.js";
import { leftByPreviousDaemon, runCommand } from "../run-command.js";
import { streamLines } from "../stream-lines.js";

/** Docker's default set: what package installs and ordinary build scripts expect of root. */
const BUILD_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_RAW",
  "CAP_SYS_CHROOT",
  "CAP_MKNOD",
  "CAP_AUDIT_WRITE",
  "CAP_SETFCAP",
];

/** Where and how the gVisor driver runs build steps. */
export interface BuildRuntime {
  runscPath: string;
  stateRoot: string;
  /** runsc global flags for the platform (systrap/ptrace). */
  platformFlag: string;
}

/**
 * Runs one build step as the only process of a throwaway gVisor sandbox and streams its output a line
 * at a time. Build steps run the user's commands, so they get gVisor's isolation like any sandbox; unlike
 * a sandbox they may have network (package installs).
 */
export async function runBuildStep(runtime: BuildRuntime, spec: BuildStepSpec): Promise<{ code: number | null; reason: string }> {
  const tmpProblem = prepareBoundTmp(spec.rootfs);
  if (tmpProblem) return { code: null, reason: tmpProblem };
  const bundle = join(spec.dir, "bundle");
  mkdirSync(bundle, { recursive: true });
  mkdirSync(runtime.stateRoot, { recursive: true });
  writeFileSync(join(bundle, "config.json"), JSON.stringify(ociSpec(spec)));
  const runsc = [runtime.runscPath, "--root", runtime.stateRoot, runtime.platformFlag, `--network=${spec.netnsPath ? "sandbox" : "none"}`, "--overlay2=none", "run", "--bundle", bundle, spec.id];
  // runsc refuses network in what it takes for the root namespace (it checks a /proc/sys/net file that
  // every namespace has on this kernel): hiding /proc/sys/net in a private mount namespace gets past it.
  const command = spec.netnsPath ? ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none /proc/sys/net && exec "$@"', "sh", ...runsc] : runsc;
  const child = spawn(command[0] ?? "runsc", command.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  for (const stream of [child.stdout, child.stderr]) streamLines(stream, spec.onLine);
  let reason = "";
  const kill = (why: string) => {
    reason ||= why;
    void runCommand(runtime.runscPath, ["--root", runtime.stateRoot, "kill", "--all", spec.id, "KILL"], { timeoutMs: 10_000 });
    child.kill("SIGKILL");
  };
  const timer = setTimeout(() => kill(`the step ran past its ${Math.round(spec.timeoutMs / 1000)} s limit`), spec.timeoutMs);
  const onAbort = () => kill("the build was cancelled");
  spec.signal?.addEventListener("abort", onAbort, { once: true });
  if (spec.signal?.aborted) onAbort(); // cancelled while the step was being set up
  try {
    const code = await new Promise<number | null>((resolve) => {
      child.on("error", (err) => {
        reason ||= `could not start runsc: ${err.message}`;
        resolve(null);
      });
      child.on("close", (c) => resolve(c));
    });
    return { code: reason ? null : code, reason: reason || (code === 0 ? "" : `exited with code ${code}`) };
  } finally {
    clearTimeout(timer);
    spec.signal?.removeEventListener("abort", onAbort);
    await runCommand(runtime.runscPath, ["--root", runtime.stateRoot, "delete", "-force", spec.id], { timeoutMs: 20_000 });
  }
}

/**
 * After a crash: kills and deletes the build containers (`stasis-build-<daemon pid>-<tag>`) under the
 * builds' runsc root whose daemon is gone; ids without a pid (made before ids had one) count as stale.
 * Returns the ids it removed; never throws.
 */
export async function removeStaleBuildContainers(options: { runscPath: string; stateRoot: string }): Promise<string[]> {
  const removed: string[] = [];
  try {
    if (!existsSync(options.stateRoot)) return removed;
    const base = ["--root", options.stateRoot];
    const list = await runCommand(options.runscPath, [...base, "list", "-quiet"], { timeoutMs: 20_000 });
    if (list.code !== 0) return removed;
    for (const id of list.stdout.split("\n").map((l) => l.trim())) {
      if (!/^[\w][\w.+-]*$/.test(id)) continue;
      const pid = /^stasis-build-(\d+)-/.exec(id)?.[1];
      if (pid && !leftByPreviousDaemon(Number(pid))) continue;
      await runCommand(options.runscPath, [...base, "kill", "--all", id, "KILL"], { timeoutMs: 10_000 });
      await runCommand(options.runscPath, [...base, "delete", "-force", id], { timeoutMs: 20_000 });
      removed.push(id);
    }
  } catch {
    // Best effort at startup: a leftover must not keep the daemon from starting.
  }
  return removed;
}

function ociSpec(spec: BuildStepSpec): object {
  const period = 100_000;
  const memory = spec.memoryMiB * 1024 * 1024;
  const env = { PATH: DEFAULT_PATH, HOME: spec.uid === 0 ? "/root" : "/", LANG: "C.UTF-8", ...spec.env };
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: spec.uid, gid: spec.gid },
      args: spec.args,
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: "/",
      capabilities: { bounding: BUILD_CAPABILITIES, effective: BUILD_CAPABILITIES, permitted: BUILD_CAPABILITIES },
      noNewPrivileges: false,
    },
    root: { path: spec.rootfs, readonly: false },
    hostname: "build",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      // /tmp stays in the layer, as in Docker (runsc would mount a tmpfs there).
      { destination: "/tmp", type: "bind", source: `${spec.rootfs}/tmp`, options: ["rbind", "rw", "nosuid", "nodev"] },
      ...spec.binds.map((b) => ({ destination: b.destination, type: "bind", source: b.source, options: ["rbind", b.readonly ? "ro" : "rw", "nosuid", "nodev"] })),
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, spec.netnsPath ? { type: "network", path: spec.netnsPath } : { type: "network" }],
      cgroupsPath: `/stasis-build/${spec.id}`,
      resources: {
        memory: { limit: memory, swap: memory },
        cpu: { quota: Math.round(spec.cpu * period), period },
        pids: { limit: 4096 },
      },
    },
  };
}
