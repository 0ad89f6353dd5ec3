// What a crashed daemon left in the templates folder: staging layers, build folders, unfinished versions,
// half-made shifted copies, pins and trash.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { leftByPreviousDaemon } from "../../runtime/run-command.js";
import { builtinRecipes } from "../template-recipes.js";
import type { LayerStore } from "./layers.js";
import type { LayerPins } from "./pins.js";
import { UNFINISHED_SHIFTED_COPY } from "./shifted-copies.js";
import type { Trash } from "./trash.js";
import type { VersionStore } from "./versions.js";

export interface StoreParts {
  root: string;
  layers: LayerStore;
  versions: VersionStore;
  pins: LayerPins;
  trash: Trash;
}

/**
 * After a crash: builds that were under way are gone; their staging folders and unfinished versions go
 * too, as do half-made shifted copies and the trash. Only those of dead processes: daemons sharing a
 * templates folder may be building right now. Run at daemon start, before any build or create: our own
 * pid on something is then a previous daemon's (a restarted daemon in a container often gets the same pid).
 */
export async function cleanupStale({ root, layers, versions, pins, trash }: StoreParts): Promise<void> {
  const dead = leftByPreviousDaemon;
  await layers.purgeStaging(dead);
  const builds = join(root, ".builds");
  if (existsSync(builds)) {
    for (const entry of readdirSync(builds)) {
      const pid = /^(\d+)-/.exec(entry)?.[1];
      if (pid && dead(Number(pid))) await trash.purge(join(builds, entry));
    }
  }
  for (const name of versions.names()) {
    for (const v of versions.versions(name)) {
      if (v.status === "building" && dead(v.buildPid ?? 0)) {
        versions.recordVersion(name, v.version);
        const t = trash.move(versions.versionDir(name, v.version), `${name}-v${v.version}`);
        if (t) await trash.purge(t);
      }
    }
  }
  // Shifted copies a crash interrupted (`ShiftedCopies`): the overlay view may still be mounted; the copy
  // and the empty layer are half made.
  const copyDirs = [
    ...versions.names().flatMap((n) => versions.versions(n).map((v) => versions.versionDir(n, v.version))),
    ...Object.keys(builtinRecipes).map((n) => versions.dir(n)),
  ];
  for (const dir of copyDirs) {
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir)) {
      const pid = UNFINISHED_SHIFTED_COPY.exec(entry)?.[1];
      if (pid && dead(Number(pid))) await trash.purge(join(dir, entry));
    }
  }
  pins.pinnedLayers(); // drops the pins of dead daemons
  if (existsSync(trash.dir)) {
    for (const entry of readdirSync(trash.dir)) {
      // Another live daemon may be deleting its own entries right now.
      if (dead(Number(/^(\d+)-/.exec(entry)?.[1] ?? 0))) await trash.purge(join(trash.dir, entry));
    }
  }
}
