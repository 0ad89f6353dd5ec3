import { describe, expect, it } from "vitest";
import { loadConfig, parseDiskPool, parseMcpAllowedHosts, parseWarmPools } from "./config.js";

describe("STASIS_WARM_POOL", () => {
  it("reads template=size pairs, drops empty pools, and refuses anything else", () => {
    expect({ ...parseWarmPools("base=2, python=0,data.v2=1") }).toEqual({ base: 2, "data.v2": 1 });
    expect({ ...parseWarmPools("") }).toEqual({});
    expect(parseWarmPools("base=1").constructor).toBeUndefined();
    expect(parseWarmPools("constructor=1").constructor).toBe(1);
    for (const bad of ["base", "base=-1", "Base=1", "base=1000", "base=two"]) expect(() => parseWarmPools(bad)).toThrow(/template=size/);
  });
});

describe("STASIS_DISK_POOL", () => {
  it("defaults to 2 disks per size, 0 turns it off, and refuses anything else", () => {
    expect(parseDiskPool(undefined)).toBe(2);
    expect(parseDiskPool("")).toBe(2);
    expect(parseDiskPool("0")).toBe(0);
    expect(parseDiskPool("16")).toBe(16);
    expect(() => parseDiskPool("17")).toThrow(/at most 16/);
    for (const bad of ["-1", "two", "1.5"]) expect(() => parseDiskPool(bad)).toThrow(/non-negative integer/);
    expect(loadConfig({ STASIS_API_KEY: "k".repeat(16), STASIS_DISK_POOL: "3" }).diskPool).toBe(3);
  });
});

describe("STASIS_METRICS_AUTH", () => {
  it("defaults to loopback, takes key or none, and refuses anything else", () => {
    const load = (value?: string) => loadConfig({ STASIS_API_KEY: "k".repeat(16), ...(value === undefined ? {} : { STASIS_METRICS_AUTH: value }) }).metricsAuth;
    expect(load()).toBe("loopback");
    expect(load("")).toBe("loopback");
    expect(load("key")).toBe("key");
    expect(load("none")).toBe("none");
    expect(() => load("open")).toThrow(/loopback, key or none/);
  });
});

describe("STASIS_TLS_*", () => {
  const load = (env: Record<string, string>) => loadConfig({ STASIS_API_KEY: "k".repeat(16), ...env }).tls;
  it("is off without certificates, on port 7443 with them, and refuses half a pair or a port without certificates", () => {
    expect(load({})).toBeNull();
    expect(load({ STASIS_TLS_DIR: "/etc/letsencrypt/live" })).toEqual({ certFile: null, keyFile: null, dir: "/etc/letsencrypt/live", port: 7443 });
    expect(load({ STASIS_TLS_CERT: "/c.pem", STASIS_TLS_KEY: "/k.pem", STASIS_HTTPS_PORT: "443" })).toEqual({ certFile: "/c.pem", keyFile: "/k.pem", dir: null, port: 443 });
    expect(() => load({ STASIS_TLS_CERT: "/c.pem" })).toThrow(/go together/);
    expect(() => load({ STASIS_HTTPS_PORT: "443" })).toThrow(/needs certificates/);
    expect(() => load({ STASIS_TLS_DIR: "/d", STASIS_HTTPS_PORT: "70000" })).toThrow(/port number/);
  });
});

describe("STASIS_MCP_ALLOWED_HOSTS", () => {
  it("reads host names (lower case, IPv6 in brackets) or *, and refuses a scheme or a port", () => {
    expect(parseMcpAllowedHosts(" Stasis.Example.com, ,[FD00::1],10.0.0.5")).toEqual(["stasis.example.com", "[fd00::1]", "10.0.0.5"]);
    expect(parseMcpAllowedHosts("*")).toEqual(["*"]);
    expect(loadConfig({ STASIS_API_KEY: "k".repeat(16) }).mcpAllowedHosts).toEqual([]);
    for (const bad of ["https://a.example", "a.example:443", "fd00::1", "a b"]) expect(() => parseMcpAllowedHosts(bad)).toThrow(/without scheme or port/);
  });
});
