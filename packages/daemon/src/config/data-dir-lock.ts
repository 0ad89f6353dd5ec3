import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Whether `pid` is a live process that looks like a Stasis daemon (a reused pid of another program is not). */
function isDaemon(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
    return /\bserve\b/.test(cmdline) || /stasis/.test(cmdline);
  } catch {
    return false;
  }
}

/**
 * One daemon per data folder: two would share the store, the disks and the runtimes' state and undo each
 * other's work (a second start of the same folder by mistake, a test that forgot to stop the first). The
 * pid file names the owner; one left by a daemon that died is taken over.
 */
export function lockDataDir(dataDir: string): { release(): void } {
  const path = join(dataDir, "daemon.pid");
  let owner = NaN;
  try {
    owner = Number(readFileSync(path, "utf8").trim());
  } catch {
    // none yet
  }
  if (isDaemon(owner)) throw new Error(`another Stasis daemon (pid ${owner}) already uses the data folder ${dataDir}; stop it first, or give this one its own STASIS_DATA_DIR`);
  writeFileSync(path, `${process.pid}\n`);
  return {
    release() {
      try {
        if (Number(readFileSync(path, "utf8").trim()) === process.pid) rmSync(path, { force: true });
      } catch {
        // already gone
      }
    },
  };
}
