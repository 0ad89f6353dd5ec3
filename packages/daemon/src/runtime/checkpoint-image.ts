import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";

/** The note, inside an image, that its agent was between two messages (the runtime ignores other files). */
const CHANNEL_IN_STEP = "stasis-channel-in-step";

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

  /** An empty partial folder to write into (a partial a crash left is removed first; a note made for it kept). */
  beginWrite(): string {
    rmSync(this.partialPath, { recursive: true, force: true });
    this.dropMarkers();
    mkdirSync(this.partialPath, { recursive: true, mode: 0o700 });
    return this.partialPath;
  }

  /** Where the note that the agent was in step waits beside a partial image (see noteChannelInStep). */
  get inStepNotePath(): string {
    return `${this.partialPath}.in-step`;
  }

  /**
   * Notes, before a checkpoint, whether the agent had read everything sent to it (AgentConnection.inStep);
   * commit() takes the note into the image, so that it survives a daemon that dies meanwhile. Without it
   * (an image of an older daemon, or of an agent that did not confirm) a restore takes the agent to have
   * been halfway through a message.
   */
  noteChannelInStep(inStep: boolean): void {
    if (inStep) writeFileSync(this.inStepNotePath, "");
    else rmSync(this.inStepNotePath, { force: true });
  }

  /** Whether the complete image was taken with the channel in step (see noteChannelInStep). */
  channelInStep(): boolean {
    return existsSync(join(this.path, CHANNEL_IN_STEP));
  }

  /** Marks the image complete. */
  commit(): void {
    renameSync(this.partialPath, this.path);
    if (existsSync(this.inStepNotePath)) renameSync(this.inStepNotePath, join(this.path, CHANNEL_IN_STEP));
    this.dropMarkers();
  }

  discardPartial(): void {
    rmSync(this.partialPath, { recursive: true, force: true });
    rmSync(this.inStepNotePath, { force: true });
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
