// `<root>/.pins`: layers a running build uses before any version lists them, kept from collection.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isAlive } from "../../runtime/run-command.js";

/** Pin files written by this process: one of our pid that is not here is a previous daemon's (same pid after a restart). */
const ownPins = new Set<string>();

export class LayerPins {
  constructor(private readonly root: string) {}

  /**
   * Marks layers a build is using before any version lists them, so a delete elsewhere (another daemon
   * may share this folder) does not collect them; `unpin` when the build's version is written or dropped.
   */
  pin(id: string, keys: string[]): void {
    const dir = join(this.root, ".pins");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `${process.pid}-${id}.json`);
    ownPins.add(file);
    writeFileSync(file, JSON.stringify(keys));
  }

  unpin(id: string): void {
    const file = join(this.root, ".pins", `${process.pid}-${id}.json`);
    rmSync(file, { force: true });
    ownPins.delete(file);
  }

  /** The layers live builds pin; drops the pins of dead daemons on the way. */
  pinnedLayers(): string[] {
    const dir = join(this.root, ".pins");
    if (!existsSync(dir)) return [];
    const keys: string[] = [];
    for (const entry of readdirSync(dir)) {
      const pid = Number(/^(\d+)-/.exec(entry)?.[1] ?? 0);
      // Our own pid on a pin we did not write: a previous daemon's, restarted with the same pid.
      const stale = pid === process.pid ? !ownPins.has(join(dir, entry)) : !isAlive(pid);
      if (stale) {
        rmSync(join(dir, entry), { force: true });
        continue;
      }
      try {
        keys.push(...(JSON.parse(readFileSync(join(dir, entry), "utf8")) as string[]));
      } catch {
        // Being written: its build's layers are younger than this collection anyway.
      }
    }
    return keys;
  }
}
