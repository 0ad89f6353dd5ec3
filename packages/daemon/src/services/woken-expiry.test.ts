import { describe, expect, it } from "vitest";
import { wokenExpiry } from "./lifecycle/records.js";

describe("wokenExpiry", () => {
  it("moves the lifetime's end back by the time spent in standby", () => {
    // 40 s of a 60 s lifetime left when it went to sleep at t=100 s; it wakes at t=500 s.
    expect(wokenExpiry({ expiresAt: 140_000, standbySince: 100_000, timeoutMs: 60_000 }, 500_000)).toBe(540_000);
  });

  it("gives a sandbox put to sleep by the end of its lifetime a fresh lifetime", () => {
    expect(wokenExpiry({ expiresAt: 100_000, standbySince: 100_500, timeoutMs: 60_000 }, 900_000)).toBe(960_000);
  });

  it("keeps a sandbox without a lifetime without one", () => {
    expect(wokenExpiry({ expiresAt: null, standbySince: 1, timeoutMs: 60_000 }, 2)).toBeNull();
  });
});
