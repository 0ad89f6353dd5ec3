import { describe, expect, it } from "vitest";
import { NftQueue } from "./nft-queue.js";

/** A stand-in for `nft -f`: records each run's script; a script holding "bad" fails the whole run. */
function fakeNft() {
  const runs: string[] = [];
  let release: (() => void) | null = null;
  const run = async (script: string) => {
    runs.push(script);
    if (runs.length === 1) await new Promise<void>((r) => (release = r)); // the first run is slow
    if (script.includes("bad")) throw new Error("nft failed: bad");
  };
  return { runs, run, release: () => release?.() };
}

describe("NftQueue", () => {
  it("runs one change at a time and sends the changes that queued meanwhile in one run", async () => {
    const nft = fakeNft();
    const q = new NftQueue(nft.run);
    const first = q.apply("a\n");
    const rest = [q.apply("b\n"), q.apply("c\n")];
    await Promise.resolve();
    expect(nft.runs).toEqual(["a\n"]);
    nft.release();
    await Promise.all([first, ...rest]);
    expect(nft.runs).toEqual(["a\n", "b\nc\n"]);
  });

  it("tries a failed combined run change by change: only the bad change's caller sees the error", async () => {
    const nft = fakeNft();
    const q = new NftQueue(nft.run);
    const first = q.apply("a\n");
    const good = q.apply("b\n");
    const bad = q.apply("bad\n");
    const after = q.apply("d\n");
    nft.release();
    await first;
    await expect(good).resolves.toBeUndefined();
    await expect(bad).rejects.toThrow("nft failed: bad");
    await expect(after).resolves.toBeUndefined();
    expect(nft.runs).toEqual(["a\n", "b\nbad\nd\n", "b\n", "bad\n", "d\n"]);
  });
});
