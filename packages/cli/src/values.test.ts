import { describe, expect, it } from "vitest";
import { commandFrom, duration, durationOrOff, keyValues, number } from "./values.js";

describe("value parsers", () => {
  it("parses durations with and without units", () => {
    expect(duration("250", "--t")).toBe(250);
    expect(duration("250ms", "--t")).toBe(250);
    expect(duration("1.5s", "--t")).toBe(1500);
    expect(duration("2m", "--t")).toBe(120_000);
    expect(duration("1h", "--t")).toBe(3_600_000);
    expect(duration("7d", "--t")).toBe(604_800_000);
    expect(duration(undefined, "--t")).toBeUndefined();
    expect(() => duration("-1", "--t")).toThrow(/--t/);
  });

  it("parses standby timers, where 0 and off turn them off", () => {
    expect(durationOrOff("off", "--t")).toBe(0);
    expect(durationOrOff("0", "--t")).toBe(0);
    expect(durationOrOff("30s", "--t")).toBe(30_000);
    expect(durationOrOff(undefined, "--t")).toBeUndefined();
    expect(() => durationOrOff("never", "--t")).toThrow(/--t/);
  });

  it("parses numbers with bounds", () => {
    expect(number("0.5", "--cpu")).toBe(0.5);
    expect(() => number("", "--cpu")).toThrow();
    expect(() => number("1e400", "--cpu")).toThrow();
    expect(() => number("2.5", "--memory", { integer: true })).toThrow(/integer/);
    expect(() => number("0", "--depth", { integer: true, min: 1 })).toThrow(/>= 1/);
  });

  it("parses KEY=VALUE pairs, later ones winning", () => {
    expect(keyValues(["A=1", "B=", "A=2", "C=a=b"], "--env")).toEqual({ A: "2", B: "", C: "a=b" });
    expect(() => keyValues(["=x"], "--env")).toThrow(/KEY=VALUE/);
  });

  it("chooses shell or argv form for a command", () => {
    expect(commandFrom(["ls"])).toEqual(["ls"]);
    expect(commandFrom(["ls", "-la"])).toEqual(["ls", "-la"]);
    expect(commandFrom(["ls -la"])).toBe("ls -la");
    expect(commandFrom(["a;b"])).toBe("a;b");
    expect(commandFrom(["echo", "a b"])).toEqual(["echo", "a b"]);
  });
});
