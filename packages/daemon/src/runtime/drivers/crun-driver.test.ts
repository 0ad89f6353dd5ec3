import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { userNamespaceLimitsHook } from "./crun-driver.js";

/** Runs the hook's script with `state` on stdin, as crun does, with nsenter replaced by a stub that prints its arguments. */
function runHook(state: string): { status: number | null; stdout: string } {
  const hook = userNamespaceLimitsHook();
  const script = hook.args[2]!.replace("exec nsenter", "exec echo nsenter");
  const out = spawnSync(hook.path, ["-c", script], { input: state, encoding: "utf8" });
  return { status: out.status, stdout: out.stdout };
}

describe("crun's user-namespace limits hook", () => {
  it("enters the user namespace of the pid in the container's state, compact or pretty-printed", () => {
    expect(runHook('{"ociVersion":"1.0.0","id":"x","status":"creating","pid":12345,"bundle":"/b"}').stdout).toMatch(/^nsenter --user --target 12345 /);
    expect(runHook('{\n  "ociVersion": "1.0.0",\n  "pid": 678,\n  "bundle": "/b"\n}\n').stdout).toMatch(/^nsenter --user --target 678 /);
  });

  it("fails, entering nothing, when the state has no pid (never the host's own namespace)", () => {
    for (const state of ['{"ociVersion":"1.0.0","status":"creating"}', '{"pid":"x"}', ""]) {
      expect(runHook(state)).toEqual({ status: 1, stdout: "" });
    }
  });
});
