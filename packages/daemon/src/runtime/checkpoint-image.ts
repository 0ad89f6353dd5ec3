import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";

/**
 * A checkpoint (memory) image on disk. It is written under its partial name and renamed once complete,
 * so the complete name existing means "complete": a crash mid-write leaves only a partial image, which
 * nothing ever restores from.
 *
 * The runtime's writer may outlive the daemon (a `kill -9` mid-checkpoint): it notes its pid beside the
 * partial image, and once the runtime says the image is whole it leaves a marker there too. A restarted
 * daemon can then tell "still being written", "whole but not yet committed" and "torn" apart.
 */
export class CheckpointImage {
  constructor(readonly path: string) {}

  /** Where a checkpoint in progress writes. */
  get partialPath(): string {
    return `${this.path}.partial`;
  }

  isComplete(): boolean {
    return existsSync(this.path);
  }

  hasPartial(): boolean {
    return existsSync(this.partialPath);
  }

  /** The marker a writer leaves once the runtime said the partial image is whole. */
  get wholeMarkerPath(): string {
    return `${this.partialPath}.whole`;
  }

  /** Where a writer that may outlive the daemon notes its pid. */
  get writerPidPath(): string {
    return `${this.partialPath}.writer`;
  }

  /** The partial image is whole: its writer finished and the runtime reported success. */
  isPartialWhole(): boolean {
    return existsSync(this.wholeMarkerPath) && existsSync(this.partialPath);
  }

  /** For writers that run in the daemon's own process (nothing to outlive). */
  markPartialWhole(): void {
    writeFileSync(this.wholeMarkerPath, "");
  }

  /** The pid a writer noted, if any (it may have exited since). */
  writerPid(): number | null {
    try {
      const pid = Number(readFileSync(this.writerPidPath, "utf8").trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** An empty partial folder to write into (a partial a crash left is removed first). */
  beginWrite(): string {
    this.discardPartial();
    mkdirSync(this.partialPath, { recursive: true, mode: 0o700 });
    return this.partialPath;
  }

  /** Marks the image complete. */
  commit(): void {
    renameSync(this.partialPath, this.path);
    this.dropMarkers();
  }

  discardPartial(): void {
    rmSync(this.partialPath, { recursive: true, force: true });
    this.dropMarkers();
  }

  private dropMarkers(): void {
    rmSync(this.wholeMarkerPath, { force: true });
    rmSync(this.writerPidPath, { force: true });
  }

  /** Takes the complete image elsewhere (a template's snapshot keeps it). */
  moveTo(target: string): CheckpointImage {
    renameSync(this.path, target);
    return new CheckpointImage(target);
  }

  /** Moves the image aside at once and deletes it off the request path (unlinking 200 MB takes a while). */
  discard(): void {
    const aside = `${this.path}.old-${Date.now()}`;
    try {
      renameSync(this.path, aside);
    } catch {
      return;
    }
    void rm(aside, { recursive: true, force: true }).catch(() => {});
  }

  /** Bytes the complete image takes on disk. */
  bytes(): number {
    return dirBytes(this.path);
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(path) : statSync(path).blocks * 512;
  }
  return total;
}
