import { describe, expect, it } from "vitest";
import { buildRuleset } from "./build-network.js";

describe("build network rules", () => {
  it("lets build traffic leave only by the uplinks", () => {
    const rules = buildRuleset(["eth0", "wlan0"]);
    expect(rules).toContain('iifname "stb*" oifname != { "eth0", "wlan0" } drop;');
    expect(rules).toContain('iifname "stb*" ip daddr { 10.213.0.0/16, 169.254.0.0/16 } drop;');
    expect(rules).toContain('iifname "stb*" drop; }'); // input: nothing from a build to the host
  });

  it("drops all forwarded build traffic on a host without a default route", () => {
    expect(buildRuleset([])).toMatch(/chain forward \{.*iifname "stb\*" ip daddr \{ 10\.213\.0\.0\/16, 169\.254\.0\.0\/16 \} drop; iifname "stb\*" drop;/);
  });
});
