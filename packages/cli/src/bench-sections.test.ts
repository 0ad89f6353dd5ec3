import { SECTIONS } from "@stasis/bench/sections";
import { describe, expect, it } from "vitest";
import { BENCH_SECTIONS } from "./bench-sections.js";

describe("BENCH_SECTIONS", () => {
  it("is the bench's own list, in its order", () => {
    expect([...BENCH_SECTIONS]).toEqual([...SECTIONS]);
  });
});
