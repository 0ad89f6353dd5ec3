import type { Sandbox } from "@stasis/sdk";
import { StasisError, type StasisErrorInit } from "@stasis/sdk";
import { describe, expect, it } from "vitest";
import type { CodeRunner, CodeRunRequest } from "./code-runner.js";
import { interpreterRunner, type InterpreterExecution } from "./interpreter-runner.js";

const FALLBACK = { stdout: "from the fallback", stderr: "", truncated: false, results: [], error: null };
const fallback: CodeRunner = async () => FALLBACK;

function request(sandbox: object, limits: Partial<CodeRunRequest> = {}): CodeRunRequest {
  return { sandbox: sandbox as Sandbox, code: "1 + 1", language: "python", timeoutMs: 1000, signal: new AbortController().signal, maxOutputChars: 1000, maxResultBytes: 1000, ...limits };
}

const stasisError = (code: string) => new StasisError({ code, message: code, status: 409, retryable: false } as unknown as StasisErrorInit);

describe("interpreterRunner", () => {
  it("uses sandbox.code.run where the SDK has it, with the run's language, timeout and signal", async () => {
    const seen: unknown[] = [];
    const execution: InterpreterExecution = { logs: { stdout: ["a\n", "b\n"], stderr: [] }, results: [{ isMainResult: true, text: "2", data: { ignored: true } }], error: null };
    const sandbox = { code: { run: async (code: string, options: unknown) => (seen.push(code, options), execution) } };
    const req = request(sandbox);
    const out = await interpreterRunner(fallback)(req);
    expect(out).toEqual({ stdout: "a\nb\n", stderr: "", truncated: false, results: [{ isMainResult: true, text: "2" }], error: null });
    expect(seen).toEqual(["1 + 1", { language: "python", timeoutMs: 1000, signal: req.signal }]);
  });

  it("keeps the results within the byte budget, with a note for what it left out", async () => {
    const png = "A".repeat(800);
    const sandbox = { code: { run: async (): Promise<InterpreterExecution> => ({ logs: { stdout: [], stderr: [] }, results: [{ isMainResult: false, png }, { isMainResult: false, png }], error: null }) } };
    const out = await interpreterRunner(fallback)(request(sandbox));
    expect(out.truncated).toBe(true);
    expect(out.results).toEqual([{ isMainResult: false, png }, { isMainResult: false, text: "[png left out: the run's results exceeded 1000 bytes]" }]);
  });

  it("falls back without sandbox.code, or when the sandbox has no interpreter; other errors are the tool's", async () => {
    expect(await interpreterRunner(fallback)(request({}))).toBe(FALLBACK);
    for (const code of ["code_interpreter_unavailable", "network_unavailable"]) {
      const sandbox = { code: { run: async () => Promise.reject(stasisError(code)) } };
      expect(await interpreterRunner(fallback)(request(sandbox))).toBe(FALLBACK);
    }
    const failing = { code: { run: async () => Promise.reject(stasisError("sandbox_failed")) } };
    await expect(interpreterRunner(fallback)(request(failing))).rejects.toThrow("sandbox_failed");
  });
});
