import { SECTION_PARTS, SECTIONS } from "@stasis/bench/sections";
import { describe, expect, it } from "vitest";
import { BENCH_SECTION_PARTS, BENCH_SECTIONS } from "./bench-sections.js";

describe("BENCH_SECTIONS", () => {
  it("is the bench's own list, in its order, with the same parts", () => {
    expect([...BENCH_SECTIONS]).toEqual([...SECTIONS]);
    expect(BENCH_SECTION_PARTS).toEqual(SECTION_PARTS);
  });
});
