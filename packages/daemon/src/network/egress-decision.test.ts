import { describe, expect, it } from "vitest";
import {
  GUARDRAIL_DEFAULT_CIDRS,
  Guardrails,
  allowsNothing,
  compilePolicy,
  decideAddress,
  decideName,
  matchName,
  needsProxy,
} from "./egress-decision.js";

const policy = (internet: boolean, allowOut: string[] = [], denyOut: string[] = []) => compilePolicy({ internet, allowOut, denyOut });

describe("decideAddress", () => {
  const cases: [string, ReturnType<typeof policy>, string, "allow" | "deny", string][] = [
    ["internet on", policy(true), "203.0.113.7", "allow", "internet"],
    ["internet off", policy(false), "203.0.113.7", "deny", "internet off"],
    ["denied CIDR", policy(true, [], ["203.0.113.0/24"]), "203.0.113.7", "deny", "denyOut"],
    ["outside a denied CIDR", policy(true, [], ["203.0.113.0/24"]), "203.0.114.1", "allow", "internet"],
    ["allowed CIDR beats denied", policy(true, ["203.0.113.7"], ["203.0.113.0/24"]), "203.0.113.7", "allow", "allowOut"],
    ["allowed CIDR with internet off", policy(false, ["198.51.100.0/24"]), "198.51.100.200", "allow", "allowOut"],
    ["allow list denies the rest", policy(true, ["198.51.100.0/24"]), "198.51.101.1", "deny", "not in allowOut"],
    ["an allow list of names only denies every address", policy(true, ["pypi.org"]), "151.101.0.223", "deny", "not in allowOut"],
    ["/0 allows everything", policy(false, ["0.0.0.0/0"]), "8.8.8.8", "allow", "allowOut"],
    ["CIDR host bits ignored", policy(false, ["198.51.100.77/24"]), "198.51.100.1", "allow", "allowOut"],
    ["not an address", policy(true), "example.com", "deny", "not an IPv4 address"],
    ["IPv6 is not handled", policy(true), "::1", "deny", "not an IPv4 address"],
  ];
  it.each(cases)("%s", (_name, compiled, ip, verdict, reason) => {
    expect(decideAddress(compiled, ip)).toEqual({ verdict, reason });
  });

  it("a malformed allowOut entry still makes an allow list (never widens the policy)", () => {
    expect(decideAddress(compilePolicy({ internet: true, allowOut: ["not a target!"], denyOut: [] }), "8.8.8.8").verdict).toBe("deny");
  });
});

describe("decideName", () => {
  const cases: [string, ReturnType<typeof policy>, string, string, "allow" | "deny", string][] = [
    ["allowed name", policy(false, ["pypi.org"]), "pypi.org", "151.101.0.223", "allow", "allowOut name"],
    ["case and trailing dot", policy(false, ["pypi.org"]), "PyPI.ORG.", "151.101.0.223", "allow", "allowOut name"],
    ["second name on the same IP", policy(true, ["pypi.org"]), "evil.org", "151.101.0.223", "deny", "not in allowOut"],
    ["wildcard matches below", policy(false, ["*.example.com"]), "a.b.example.com", "1.2.3.4", "allow", "allowOut name"],
    ["wildcard does not match the name itself", policy(false, ["*.example.com"]), "example.com", "1.2.3.4", "deny", "not in allowOut"],
    ["wildcard does not match a longer label", policy(false, ["*.example.com"]), "badexample.com", "1.2.3.4", "deny", "not in allowOut"],
    ["denied name", policy(true, [], ["evil.com"]), "evil.com", "1.2.3.4", "deny", "denyOut name"],
    ["denied wildcard", policy(true, [], ["*.evil.com"]), "x.evil.com", "1.2.3.4", "deny", "denyOut name"],
    ["allowed name beats denied wildcard", policy(true, ["ok.evil.com"], ["*.evil.com"]), "ok.evil.com", "1.2.3.4", "allow", "allowOut name"],
    ["no name rule: the address decides (denied CIDR)", policy(true, [], ["evil.com", "1.2.3.0/24"]), "fine.com", "1.2.3.4", "deny", "denyOut"],
    ["no name rule: the address decides (allowed CIDR)", policy(false, ["1.2.3.0/24"]), "fine.com", "1.2.3.4", "allow", "allowOut"],
    ["no name rule: internet", policy(true, [], ["evil.com"]), "fine.com", "1.2.3.4", "allow", "internet"],
  ];
  it.each(cases)("%s", (_name, compiled, name, ip, verdict, reason) => {
    expect(decideName(compiled, name, ip)).toEqual({ verdict, reason });
  });

  it("matchName says which list names it", () => {
    const p = policy(true, ["a.com"], ["*.com"]);
    expect(matchName(p, "a.com")).toBe("allow");
    expect(matchName(p, "b.com")).toBe("deny");
    expect(matchName(p, "b.org")).toBeNull();
  });
});

describe("needsProxy and allowsNothing", () => {
  it("needs the proxy only when a domain or wildcard is named", () => {
    expect(needsProxy(policy(true))).toBe(false);
    expect(needsProxy(policy(true, ["10.0.0.0/8"], ["1.2.3.4"]))).toBe(false);
    expect(needsProxy(policy(true, [], ["evil.com"]))).toBe(true);
    expect(needsProxy(policy(false, ["*.pypi.org"]))).toBe(true);
  });
  it("allows nothing only with internet off and no allow list", () => {
    expect(allowsNothing(policy(false))).toBe(true);
    expect(allowsNothing(policy(false, ["pypi.org"]))).toBe(false);
    expect(allowsNothing(policy(true))).toBe(false);
  });
});

describe("Guardrails", () => {
  const guard = (opened: string[] = [], testOnlyOpenLoopback = false) =>
    new Guardrails({ sandboxRange: "10.77.0.0/16", hostAddresses: ["192.168.1.10", "203.0.113.5"], opened, testOnlyOpenLoopback });

  const blocked = [
    "0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.0.1", "169.254.169.254", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "255.255.255.255", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1", "100.64.0.1", "100.127.255.255",
    "10.77.0.2", "203.0.113.5", "192.168.1.10", "not-an-ip",
  ];
  it.each(blocked)("blocks %s", (ip) => expect(guard().blocked(ip)).not.toBeNull());

  it.each(["8.8.8.8", "172.32.0.1", "100.128.0.1", "192.169.0.1", "223.255.255.255", "203.0.113.6", "11.0.0.1"])("lets the policy decide %s", (ip) => {
    expect(guard().blocked(ip)).toBeNull();
  });

  it("an opened range makes private addresses reachable", () => {
    const g = guard(["10.0.0.0/8", "169.254.169.254/32"]);
    expect(g.blocked("10.1.2.3")).toBeNull();
    expect(g.blocked("169.254.169.254")).toBeNull();
    expect(g.blocked("169.254.0.1")).toBe("link-local (cloud metadata)");
  });

  it("never opens the host's addresses, the sandbox range, loopback or 0/8", () => {
    const g = guard(["0.0.0.0/0"]);
    expect(g.blocked("10.77.3.4")).toBe("the sandbox range");
    expect(g.blocked("192.168.1.10")).toBe("this host");
    expect(g.blocked("203.0.113.5")).toBe("this host");
    expect(g.blocked("127.0.0.1")).toBe("loopback");
    expect(g.blocked("0.0.0.0")).toBe("this host (0.0.0.0/8)");
    expect(g.blocked("192.168.1.11")).toBeNull();
  });

  it("loopback opens only with the test-only option, and then only where a range is opened", () => {
    expect(guard([], true).blocked("127.0.0.1")).toBe("loopback");
    expect(guard(["127.0.0.0/8"], true).blocked("127.0.0.1")).toBeNull();
  });

  it("rejects a malformed configuration", () => {
    expect(() => new Guardrails({ sandboxRange: "nope", hostAddresses: [], opened: [] })).toThrow();
    expect(() => new Guardrails({ sandboxRange: "10.0.0.0/8", hostAddresses: ["x"], opened: [] })).toThrow();
    expect(() => new Guardrails({ sandboxRange: "10.0.0.0/8", hostAddresses: [], opened: ["a.com"] })).toThrow();
  });

  it("exports the default ranges for nftables", () => {
    expect(GUARDRAIL_DEFAULT_CIDRS.map((r) => r.cidr)).toEqual([
      "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
    ]);
  });
});
