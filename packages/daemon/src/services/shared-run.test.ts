import { describe, expect, it } from "vitest";
import { sharedRun } from "./shared-run.js";

describe("sharedRun", () => {
  it("shares one run between concurrent callers, runs again once it settled, failures included", async () => {
    let runs = 0;
    let release: (v: number) => void = () => {};
    const shared = sharedRun(() => {
      runs++;
      return new Promise<number>((resolve) => (release = resolve));
    });
    const a = shared();
    const b = shared();
    expect(runs).toBe(1);
    release(7);
    expect(await Promise.all([a, b])).toEqual([7, 7]);
    const c = shared();
    expect(runs).toBe(2);
    release(8);
    expect(await c).toBe(8);

    let fail = true;
    const flaky = sharedRun(async () => {
      if (fail) throw new Error("probe failed");
      return "ok";
    });
    await expect(flaky()).rejects.toThrow("probe failed");
    fail = false;
    expect(await flaky()).toBe("ok");
  });
});
