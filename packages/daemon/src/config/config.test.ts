import { describe, expect, it } from "vitest";
import { parseWarmPools } from "./config.js";

describe("STASIS_WARM_POOL", () => {
  it("reads template=size pairs, drops empty pools, and refuses anything else", () => {
    expect({ ...parseWarmPools("base=2, python=0,data.v2=1") }).toEqual({ base: 2, "data.v2": 1 });
    expect({ ...parseWarmPools("") }).toEqual({});
    expect(parseWarmPools("base=1").constructor).toBeUndefined();
    expect(parseWarmPools("constructor=1").constructor).toBe(1);
    for (const bad of ["base", "base=-1", "Base=1", "base=1000", "base=two"]) expect(() => parseWarmPools(bad)).toThrow(/template=size/);
  });
});
