import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";

/**
 * A checkpoint (memory) image on disk. It is written under its partial name and renamed once complete,
 * so the complete name existing means "complete": a crash mid-write leaves only a partial image, which
 * nothing ever restores from.
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

  /** An empty partial folder to write into (a partial a crash left is removed first). */
  beginWrite(): string {
    this.discardPartial();
    mkdirSync(this.partialPath, { recursive: true, mode: 0o700 });
    return this.partialPath;
  }

  /** Marks the image complete. */
  commit(): void {
    renameSync(this.partialPath, this.path);
  }

  discardPartial(): void {
    rmSync(this.partialPath, { recursive: true, force: true });
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
