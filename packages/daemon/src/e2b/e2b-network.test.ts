import { describe, expect, it } from "vitest";
import { E2bHttpError } from "./e2b-http-error.js";
import { e2bPolicy } from "./e2b-network.js";

describe("E2B network settings as a Stasis policy", () => {
  it("allowInternetAccess: false and denyOut 0.0.0.0/0 both turn the internet off; true leaves the daemon's default", () => {
    expect(e2bPolicy(false, undefined).policy).toEqual({ internet: false, denyOut: [] });
    expect(e2bPolicy(undefined, { denyOut: ["0.0.0.0/0", "203.0.113.0/24"] }).policy).toEqual({ internet: false, denyOut: ["203.0.113.0/24"] });
    expect(e2bPolicy(true, undefined).policy).toEqual({ denyOut: [] });
  });

  it("keeps allowOut (domains included) and header rules by lowercased host", () => {
    const r = e2bPolicy(undefined, { allowOut: ["api.example.com", "*.pypi.org", "8.8.8.8"], rules: { "API.example.com": [{ transform: { headers: { Authorization: "Bearer x" } } }] } });
    expect(r.policy.allowOut).toEqual(["api.example.com", "*.pypi.org", "8.8.8.8"]);
    expect(r.rules).toEqual({ "api.example.com": { Authorization: "Bearer x" } });
  });

  it("refuses what it cannot honour with a 400", () => {
    const bad: Parameters<typeof e2bPolicy>[1][] = [{ allowOut: ["not a target"] }, { rules: { "*": [] } }, { rules: { "10.0.0.0/8": [] } }, { egressProxy: { url: "http://p" } }, { maskRequestHost: "x" }];
    for (const network of bad) {
      expect(() => e2bPolicy(undefined, network)).toThrow(E2bHttpError);
    }
  });
});
