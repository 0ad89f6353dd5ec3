import { statfsSync } from "node:fs";
import { ApiError } from "../errors/api-error.js";

const MiB = 1024 * 1024;

/** Bytes free for an unprivileged writer on the file system holding `path`, or null when it cannot be read. */
export function freeBytes(path: string): number | null {
  try {
    const fs = statfsSync(path);
    return fs.bavail * fs.bsize;
  } catch {
    return null;
  }
}

/**
 * Refuses a disk larger than the host's free space. Disks are sparse, so many may together promise more
 * than the host has (only what is written costs space); but one disk that could never be filled even
 * on an otherwise empty host is a request the host cannot honour, and its sandbox would meet ENOSPC on
 * the host's disk instead of its own quota.
 */
export function checkDiskFits(diskMiB: number, free: number | null, where: string): void {
  if (free === null || diskMiB * MiB <= free) return;
  const freeMiB = Math.floor(free / MiB);
  throw new ApiError("insufficient_storage", `diskMiB ${diskMiB} is more than the ${freeMiB} MiB free on the host's disk (${where}); ask for at most ${freeMiB} MiB`, { diskMiB, freeMiB });
}
