import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupMode, mustRun, runProcess, sleep, time } from "../host.js";

export type RuntimeName = "gvisor" | "crun";

export interface RawRuntimeOptions {
  /** The runtime's state root (runsc/crun --root): private to this bench run. */
  root: string;
  /** Where bundles and images go. */
  workDir: string;
  /** The template's root filesystem, mounted read-only in every raw container. */
  rootfs: string;
  /** Names this run's containers and cgroups, so that the sweep removes exactly these. */
  tag: string;
  /**
   * runsc with its own network stack in the bundle's namespace (`--network=sandbox`, open connections reset
   * at a checkpoint), as the daemon runs networked sandboxes; default: no network.
   */
  network?: boolean;
}

/** The top cgroup of this run's raw containers (under every v1 controller, or the v2 root). */
export function rawCgroupParent(tag: string): string {
  return `/stasis-bench-${tag}`;
}

/**
 * Runs a command the way the raw CLI would be used by someone without Stasis. crun refuses hybrid cgroups
 * ("cgroups in hybrid mode not supported"), so there it runs in a private mount namespace with the
 * unified mount hidden: crun then works in pure v1 mode (the same workaround the daemon's crun driver uses).
 */
function hybridWrap(cmd: string[]): string[] {
  if (cgroupMode() !== "hybrid") return cmd;
  return ["unshare", "-m", "--propagation", "private", "sh", "-c", 'umount -l /sys/fs/cgroup/unified 2>/dev/null || mount -t tmpfs none /sys/fs/cgroup/unified; exec "$@"', "x", ...cmd];
}

/** The raw runtime CLI (runsc with systrap and no network, as the daemon runs it; or crun) on the template's rootfs. */
export class RawRuntime {
  private readonly detached = new Set<ChildProcess>();
  private readonly fds = new Set<number>();

  constructor(
    readonly runtime: RuntimeName,
    private readonly options: RawRuntimeOptions,
  ) {}

  get tool(): "runsc" | "crun" {
    return this.runtime === "gvisor" ? "runsc" : "crun";
  }

  /** The full command line for the runtime with these arguments. */
  cmd(args: string[]): string[] {
    if (this.runtime === "gvisor" && this.options.network) {
      // runsc's root-namespace check misfires on this kernel (see platform notes): hide /proc/sys/net.
      return ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /proc/sys/net && exec "$@"', "x", "runsc", "--root", this.options.root, "--platform=systrap", "--network=sandbox", "--net-disconnect-ok", ...args];
    }
    if (this.runtime === "gvisor") return ["runsc", "--root", this.options.root, "--platform=systrap", "--network=none", ...args];
    return hybridWrap(["crun", "--root", this.options.root, ...args]);
  }

  cgroupPath(id: string): string {
    return `${rawCgroupParent(this.options.tag)}/${id}`;
  }

  /** Writes an OCI bundle that runs `args` on the template's rootfs (read-only), in its own cgroup. */
  async bundle(name: string, args: string[], options: { memoryBytes?: number; cgroupId?: string; netnsPath?: string } = {}): Promise<string> {
    const dir = join(this.options.workDir, `${this.runtime}-${name}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    await mustRun([this.tool, "spec"], { cwd: dir });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as {
      process: { terminal: boolean; args: string[] };
      root: { path: string; readonly: boolean };
      linux: { cgroupsPath?: string; resources?: unknown; namespaces: { type: string; path?: string }[] };
    };
    config.process.terminal = false;
    config.process.args = args;
    config.root = { path: this.options.rootfs, readonly: true };
    if (options.cgroupId) config.linux.cgroupsPath = this.cgroupPath(options.cgroupId);
    if (options.memoryBytes) config.linux.resources = { memory: { limit: options.memoryBytes } };
    if (options.netnsPath) config.linux.namespaces = [...config.linux.namespaces.filter((n) => n.type !== "network"), { type: "network", path: options.netnsPath }];
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    return dir;
  }

  /** `run` in the foreground until the container's process exits; returns its stdout. */
  async run(bundle: string, id: string): Promise<string> {
    return (await mustRun(this.cmd(["run", "--bundle", bundle, id]), { timeoutMs: 300_000 })).stdout;
  }

  /**
   * Starts a long-running container in the background. Its stdout is a FIFO (gVisor overwrites regular
   * files at its own offset, and refuses to restore a checkpointed socket onto anything but a pipe).
   */
  async start(bundle: string, id: string): Promise<{ stdoutFd: number; fifo: string }> {
    const fifo = join(bundle, `${id}.out`);
    rmSync(fifo, { force: true });
    await mustRun(["mkfifo", fifo]);
    // Read-write: nobody has to read for the writer not to block, and a short output fits in the buffer.
    const fd = openSync(fifo, constants.O_RDWR);
    this.fds.add(fd);
    const cmd = this.cmd(["run", "--bundle", bundle, id]);
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ["ignore", fd, "ignore"], detached: true });
    child.unref();
    this.detached.add(child);
    child.once("exit", () => this.detached.delete(child));
    await this.waitUntilExecWorks(id);
    return { stdoutFd: fd, fifo };
  }

  /** Polls `exec true` until the container answers (runsc run returns nothing when ready). */
  async waitUntilExecWorks(id: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const out = await runProcess(this.cmd(["exec", id, "/bin/true"]), { timeoutMs: 30_000 });
      if (out.code === 0) return;
      if (Date.now() > deadline) throw new Error(`raw ${this.tool} container ${id} did not start: ${out.stderr.trim().slice(-500)}`);
      await sleep(100);
    }
  }

  /** Waits until a container started by `start` has written `text` to its stdout FIFO (and consumes it). */
  async waitForOutput(fifo: string, text: string, timeoutMs = 120_000): Promise<void> {
    // A second, non-blocking reader: the bench's read-write fd keeps a writer open, so an empty FIFO
    // answers EAGAIN instead of EOF.
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const buf = Buffer.alloc(4096);
    let seen = "";
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        try {
          const n = readSync(fd, buf, 0, buf.length, null);
          seen += buf.toString("utf8", 0, n);
          if (seen.includes(text)) return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
        }
        if (Date.now() > deadline) throw new Error(`raw container never printed '${text}' (got ${JSON.stringify(seen.slice(-200))})`);
        await sleep(100);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** `exec` of a command in a running container; returns its stdout. */
  async exec(id: string, args: string[]): Promise<string> {
    return (await mustRun(this.cmd(["exec", id, ...args]), { timeoutMs: 120_000 })).stdout;
  }

  /** Milliseconds of one `exec`. */
  async timeExec(id: string, args: string[]): Promise<number> {
    return time(() => this.exec(id, args));
  }

  /** runsc only: checkpoint uncompressed (as the daemon does) into `imagePath`; the container stops. */
  async checkpoint(id: string, imagePath: string): Promise<number> {
    rmSync(imagePath, { recursive: true, force: true });
    return time(() => mustRun(this.cmd(["checkpoint", "--compression=none", "--image-path", imagePath, id]), { timeoutMs: 300_000 }));
  }

  /** runsc only: `restore --detach` from an image, with a FIFO as stdout; returns the milliseconds until it returns. */
  async restore(bundle: string, imagePath: string, id: string, stdoutFd: number): Promise<number> {
    return time(() => mustRun(this.cmd(["restore", "--detach", "--image-path", imagePath, "--bundle", bundle, id]), { stdout: stdoutFd, timeoutMs: 300_000 }));
  }

  /** Kills and deletes a container; never throws. */
  async remove(id: string): Promise<void> {
    await runProcess(this.cmd(["kill", id, "KILL"]), { timeoutMs: 30_000 }).catch(() => undefined);
    const force = this.runtime === "gvisor" ? "-force" : "--force";
    for (let attempt = 0; attempt < 3; attempt++) {
      const out = await runProcess(this.cmd(["delete", force, id]), { timeoutMs: 60_000 }).catch(() => undefined);
      if (out?.code === 0) return;
      await sleep(200 * (attempt + 1));
    }
  }

  /** Removes every container under this runtime's root, the FIFOs' fds, and this run's empty cgroups. */
  async sweep(): Promise<void> {
    for (const child of this.detached) child.kill("SIGKILL");
    if (existsSync(this.options.root)) {
      const list = await runProcess(this.cmd(["list", this.runtime === "gvisor" ? "-quiet" : "-q"]), { timeoutMs: 30_000 }).catch(() => undefined);
      const ids = (list?.stdout ?? "").split("\n").map((l) => l.trim()).filter((l) => l && l !== "ID");
      for (const id of ids) await this.remove(id);
    }
    for (const fd of this.fds) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
    this.fds.clear();
    removeCgroupTree(rawCgroupParent(this.options.tag));
  }
}

/** rmdir's a cgroup and its empty children in every hierarchy (v1 controllers or v2). Never throws. */
export function removeCgroupTree(path: string): void {
  const roots = cgroupMode() === "v2" ? ["/sys/fs/cgroup"] : readdirSync("/sys/fs/cgroup").map((c) => `/sys/fs/cgroup/${c}`);
  for (const root of roots) {
    const dir = `${root}${path}`;
    if (!existsSync(dir)) continue;
    try {
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) rmdirQuiet(join(dir, entry.name));
      rmdirQuiet(dir);
    } catch {
      // not a cgroup directory we can list
    }
  }
}

function rmdirQuiet(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // busy or gone
  }
}
