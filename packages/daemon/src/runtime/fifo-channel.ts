import { constants, openSync, closeSync, existsSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import type { AgentChannel } from "./driver.js";
import { mustRun } from "./run-command.js";

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
