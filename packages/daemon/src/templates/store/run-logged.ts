// Runs a host tool (mount, cp, mmdebstrap) passing its output lines on; fails with the last lines.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { ProgressFn } from "./manifests.js";

export function runLogged(cmd: string, args: string[], progress?: ProgressFn): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let tail: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        tail = [...tail.slice(-20), line];
        progress?.(line);
      });
    }
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}:\n${tail.join("\n")}`))));
  });
}
