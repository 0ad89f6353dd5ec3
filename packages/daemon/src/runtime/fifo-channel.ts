import { spawn } from "node:child_process";
import { constants, openSync, closeSync, existsSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import type { AgentChannel } from "./driver.js";
import { mustRun } from "./run-command.js";

/** The channel pipes' capacity: Linux's default pipe-max-size, so any user may set it. */
export const CHANNEL_PIPE_BYTES = 1 << 20;

/**
 * The agent channel is a pair of named pipes in the sandbox directory. The runtime process gets both
 * opened read-write, so neither side ever sees EOF or EPIPE while the sandbox lives: the daemon can
 * restart and reopen them, and gVisor restores a checkpoint onto them (pipes survive checkpoints,
 * host sockets do not).
 */
export class FifoPair {
  readonly inPath: string;
  readonly outPath: string;

  constructor(dir: string) {
    this.inPath = join(dir, "agent.in");
    this.outPath = join(dir, "agent.out");
  }

  /** Makes the pipes that are not there yet (one mkfifo, off the event loop). */
  async create(): Promise<void> {
    const missing = [this.inPath, this.outPath].filter((p) => !existsSync(p));
    if (missing.length > 0) await mustRun("mkfifo", ["-m", "0600", ...missing]);
  }

  /** File descriptors handed to the runtime as the agent's stdin and stdout. Close them after spawn. */
  openForRuntime(): { stdin: number; stdout: number } {
    return { stdin: openSync(this.inPath, constants.O_RDWR), stdout: openSync(this.outPath, constants.O_RDWR) };
  }

  /**
   * Raises both pipes' capacity from Linux's 64 KiB to CHANNEL_PIPE_BYTES, so that a 1 MiB frame crosses
   * in one piece: with 64 KiB, each frame took 16 wake-ups and reads of gVisor's sentry and the agent.
   * Node has no fcntl, and inside gVisor the agent's stdio are not pipes, so the agent binary does it on
   * the host (`-pipe-size`), with the pipes as its stdin and stdout. The capacity lasts as long as the
   * pipes do (the runtime holds them open), across daemon restarts.
   */
  static widen(agentPath: string, fds: { stdin: number; stdout: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      const helper = spawn(agentPath, ["-pipe-size", String(CHANNEL_PIPE_BYTES)], { stdio: [fds.stdin, fds.stdout, "pipe"] });
      let stderr = "";
      helper.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
      helper.on("error", reject);
      helper.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(stderr.trim() || `${agentPath} -pipe-size: exit ${code}`))));
    });
  }

  /** The daemon's non-blocking ends (net.Socket over a pipe fd keeps libuv's thread pool free). */
  openForDaemon(): AgentChannel {
    const inFd = openSync(this.inPath, constants.O_WRONLY | constants.O_NONBLOCK);
    let outFd: number;
    try {
      outFd = openSync(this.outPath, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      closeSync(inFd);
      throw err;
    }
    const input = new Socket({ fd: inFd, readable: false, writable: true });
    const output = new Socket({ fd: outFd, readable: true, writable: false });
    return { input, output };
  }
}
