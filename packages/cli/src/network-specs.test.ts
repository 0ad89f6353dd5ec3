import { describe, expect, it } from "vitest";
import { parseCommandLine } from "./parse.js";
import { UsageError } from "./usage-error.js";

const command = (line: string) => parseCommandLine(line.split(" ")).command;

describe("network flags", () => {
  it("sandbox create takes a policy and secrets", () => {
    expect(command("sandbox create --internet off --allow-out pypi.org --allow-out 203.0.113.0/24 --secret API_KEY")).toMatchObject({
      kind: "sandbox.create",
      request: { network: { internet: false, allowOut: ["pypi.org", "203.0.113.0/24"] }, secrets: ["API_KEY"] },
    });
  });

  it("sandbox network changes only what is given, and can empty a list", () => {
    expect(command("sandbox network sbx_0123456789abcdef --deny-out *.example.com")).toEqual({ kind: "sandbox.network", id: "sbx_0123456789abcdef", policy: { denyOut: ["*.example.com"] } });
    expect(command("sandbox network sbx_0123456789abcdef --clear-allow")).toEqual({ kind: "sandbox.network", id: "sbx_0123456789abcdef", policy: { allowOut: [] } });
    expect(command("sandbox network sbx_0123456789abcdef")).toEqual({ kind: "sandbox.network", id: "sbx_0123456789abcdef", policy: {} });
  });

  it("refuses malformed targets and values with a usage error", () => {
    for (const line of ["sandbox create --allow-out not_a_target", "sandbox network x --internet maybe", "sandbox create --secret 1BAD"]) {
      expect(() => parseCommandLine(line.split(" "))).toThrow(UsageError);
    }
  });
});

describe("preview commands", () => {
  it("sandbox url, ports and preview", () => {
    expect(command("sandbox url sbx_0123456789abcdef 8000 --sign --expires 60")).toEqual({ kind: "sandbox.url", id: "sbx_0123456789abcdef", port: 8000, sign: true, expiresInS: 60 });
    expect(command("sandbox ports sbx_0123456789abcdef")).toEqual({ kind: "sandbox.ports", id: "sbx_0123456789abcdef" });
    expect(command("sandbox preview sbx_0123456789abcdef --public on --rotate-token")).toEqual({ kind: "sandbox.preview", id: "sbx_0123456789abcdef", change: { public: true, rotateToken: true } });
    expect(() => parseCommandLine("sandbox url x 0".split(" "))).toThrow(UsageError);
  });
});

describe("domain and port-forward commands", () => {
  it("parse hosts, sandboxes and ports, and refuse bad ports", () => {
    expect(command("domain add App.Example.com sbx_0123456789abcdef 8000")).toEqual({ kind: "domain.add", host: "app.example.com", sandboxId: "sbx_0123456789abcdef", port: 8000 });
    expect(command("domain ls")).toEqual({ kind: "domain.list" });
    expect(command("domain rm a.example.com b.example.com")).toEqual({ kind: "domain.rm", hosts: ["a.example.com", "b.example.com"] });
    expect(command("port-forward sbx_0123456789abcdef 5432")).toEqual({ kind: "port-forward", id: "sbx_0123456789abcdef", port: 5432, localPort: 5432, address: "127.0.0.1" });
    expect(command("port-forward sbx_0123456789abcdef 5432 --local-port 0 --address 0.0.0.0")).toEqual({ kind: "port-forward", id: "sbx_0123456789abcdef", port: 5432, localPort: 0, address: "0.0.0.0" });
    expect(() => parseCommandLine("port-forward x 70000".split(" "))).toThrow(UsageError);
    expect(() => parseCommandLine("port-forward x 22 --local-port -1".split(" "))).toThrow(UsageError);
    expect(() => parseCommandLine("domain add h x 0".split(" "))).toThrow(UsageError);
  });
});
