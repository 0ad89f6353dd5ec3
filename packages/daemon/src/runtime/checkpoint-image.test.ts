import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CheckpointImage } from "./checkpoint-image.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "stasis-image-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("CheckpointImage", () => {
  it("is complete only once committed, and a new write replaces a partial a crash left", () => {
    const image = new CheckpointImage(join(dir, "checkpoint"));
    expect(image.isComplete()).toBe(false);
    writeFileSync(join(image.beginWrite(), "pages.img"), "old");
    expect(image.hasPartial()).toBe(true);
    expect(image.isComplete()).toBe(false);
    const partial = image.beginWrite();
    expect(readdirSync(partial)).toEqual([]);
    writeFileSync(join(partial, "pages.img"), "x".repeat(10_000));
    image.commit();
    expect(image.isComplete()).toBe(true);
    expect(image.hasPartial()).toBe(false);
    expect(image.bytes()).toBeGreaterThan(0);
  });

  it("keeps the note that the channel was in step, made before the write, through the commit and a move", () => {
    const image = new CheckpointImage(join(dir, "checkpoint"));
    image.noteChannelInStep(true);
    writeFileSync(join(image.beginWrite(), "pages.img"), "x");
    image.commit();
    expect(image.channelInStep()).toBe(true);
    expect(existsSync(image.inStepNotePath)).toBe(false);
    expect(image.moveTo(join(dir, "kept")).channelInStep()).toBe(true);
    // Not in step, or a checkpoint that failed: no note.
    image.noteChannelInStep(true);
    image.noteChannelInStep(false);
    writeFileSync(join(image.beginWrite(), "pages.img"), "x");
    image.commit();
    expect(image.channelInStep()).toBe(false);
    image.discard();
    image.noteChannelInStep(true);
    image.beginWrite();
    image.discardPartial();
    expect(existsSync(image.inStepNotePath)).toBe(false);
  });

  it("moves and discards the complete image", async () => {
    const image = new CheckpointImage(join(dir, "checkpoint"));
    writeFileSync(join(image.beginWrite(), "pages.img"), "x");
    image.commit();
    const kept = image.moveTo(join(dir, "kept"));
    expect(image.isComplete()).toBe(false);
    expect(kept.isComplete()).toBe(true);
    kept.discard();
    expect(kept.isComplete()).toBe(false);
    // Removed in the background.
    for (let i = 0; i < 50 && readdirSync(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(readdirSync(dir)).toEqual([]);
    expect(existsSync(join(dir, "kept"))).toBe(false);
  });
});
