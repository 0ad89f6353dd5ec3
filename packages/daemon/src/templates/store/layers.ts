// Layers: `<root>/.layers/<key>/diff`, complete once `<root>/.layers/<key>/layer.json` exists.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Trash } from "./trash.js";

export class LayerStore {
  constructor(
    private readonly root: string,
    private readonly trash: Trash,
  ) {}

  dir(key: string): string {
    return join(this.root, ".layers", key);
  }

  has(key: string): boolean {
    return existsSync(join(this.dir(key), "layer.json"));
  }

  /** Publishes a finished layer built in `staging` (which holds `diff/`). */
  commit(key: string, staging: string, info: { sizeBytes: number; step: string }): void {
    // layer.json marks a layer complete (`has`): written last, once diff/ is in place, and published
    // with it by one rename.
    writeFileSync(join(staging, "layer.json"), `${JSON.stringify({ key, ...info, createdAt: new Date().toISOString() })}\n`);
    const dir = this.dir(key);
    // An identical layer finished by a concurrent build first: keep that one.
    if (this.has(key)) {
      rmSync(staging, { recursive: true, force: true });
      return;
    }
    // A folder without layer.json is no layer (a crash mid-write): the new one replaces it.
    const incomplete = existsSync(dir) ? this.trash.move(dir, `layer-${key}`) : null;
    if (incomplete) void this.trash.purge(incomplete);
    try {
      renameSync(staging, dir);
    } catch (err) {
      // Another daemon published it between our check and the rename.
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== "EEXIST" && code !== "ENOTEMPTY") || !this.has(key)) throw err;
      rmSync(staging, { recursive: true, force: true });
    }
  }

  size(key: string): number {
    try {
      return (JSON.parse(readFileSync(join(this.dir(key), "layer.json"), "utf8")) as { sizeBytes: number }).sizeBytes;
    } catch {
      return 0;
    }
  }

  /** A fresh staging folder for a layer being built (removed by `cleanupStale` if the daemon dies). */
  staging(key: string): string {
    const dir = join(this.root, ".layers", `${key}.building-${process.pid}-${Date.now().toString(36)}`);
    mkdirSync(join(dir, "diff"), { recursive: true });
    mkdirSync(join(dir, "work"), { recursive: true });
    return dir;
  }

  /** Deletes every layer not in `inUse()` (staging folders aside). */
  async collect(inUse: () => Set<string>): Promise<void> {
    const dir = join(this.root, ".layers");
    if (!existsSync(dir)) return;
    // Checked and moved aside in one synchronous tick: no build of this daemon can pin or find (`has`)
    // a layer between the check and its removal, and a crash mid-delete leaves no half layer under its key.
    // (A build on another daemon sharing the folder checks its layers again once its version is written.)
    const used = inUse();
    const trashed: string[] = [];
    for (const entry of readdirSync(dir)) {
      if (entry.includes(".building-") || used.has(entry)) continue;
      const t = this.trash.move(join(dir, entry), `layer-${entry}`);
      if (t) trashed.push(t);
    }
    for (const t of trashed) await this.trash.purge(t);
  }

  /** Staging folders of builds whose daemon is dead (`dead(pid)`); a step's overlay may still be mounted there. */
  async purgeStaging(dead: (pid: number) => boolean): Promise<void> {
    const layers = join(this.root, ".layers");
    if (!existsSync(layers)) return;
    for (const entry of readdirSync(layers)) {
      const pid = /\.building-(\d+)-/.exec(entry)?.[1];
      // purge unmounts before deleting anything.
      if (pid && dead(Number(pid))) await this.trash.purge(join(layers, entry));
    }
  }
}
