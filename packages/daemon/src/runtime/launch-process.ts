import { spawn } from "node:child_process";
import { appendFileSync, closeSync, openSync } from "node:fs";
import { join } from "node:path";
import type { LaunchedSandbox } from "./driver.js";
import { FifoPair } from "./fifo-channel.js";

/**
 * Starts a runtime CLI (`runsc run`, `crun run`) that runs the agent as init, with the agent channel on
 * its stdin/stdout. The CLI gets its own session so sandboxes outlive a daemon restart; its stderr goes
 * to runtime.log in the sandbox dir for `doctor` and failure reasons.
 */
export async function launchRuntimeProcess(command: string, args: string[], runtimeDir: string, agentPath: string): Promise<LaunchedSandbox> {
  const fifos = new FifoPair(runtimeDir);
  await fifos.create();
  const fds = fifos.openForRuntime();
  const logFd = openSync(join(runtimeDir, "runtime.log"), "a");
  let child;
  try {
    child = spawn(command, args, { stdio: [fds.stdin, fds.stdout, logFd], detached: true });
    // In the background (the helper holds its own copies of the fds): a failure only costs speed.
    FifoPair.widen(agentPath, fds).catch((err: Error) => {
      try {
        appendFileSync(join(runtimeDir, "runtime.log"), `stasis: could not widen the channel pipes: ${err.message}\n`);
      } catch {
        // The sandbox's folder is gone.
      }
    });
  } finally {
    closeSync(fds.stdin);
    closeSync(fds.stdout);
    closeSync(logFd);
  }
  child.unref();
  const exited = new Promise<string>((resolve) => {
    child.on("error", (err) => resolve(`could not start ${command}: ${err.message}`));
    child.on("exit", (code, signal) => resolve(signal ? `runtime killed by ${signal}` : `runtime exited with code ${code}`));
  });
  return { channel: fifos.openForDaemon(), exited };
}
