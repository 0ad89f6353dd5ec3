import { StasisError } from "@stasis/sdk";
import { HeadTail } from "../bounds.js";
import type { CodeDisplay, CodeLanguage, CodeRunner, CodeRunOutput, CodeRunRequest } from "./code-runner.js";

/**
 * What this runner needs of the code interpreter's SDK call, `sandbox.code.run(code, options)` (an
 * Execution: logs, results as MIME bundles with png/jpeg in base64, the exception). Typed structurally so
 * that this package builds against an SDK with or without it.
 */
export interface InterpreterExecution {
  logs: { stdout: string[]; stderr: string[] };
  results: (CodeDisplay & Record<string, unknown>)[];
  error: { name: string; value: string; traceback: string } | null;
}
interface InterpreterSandbox {
  code: { run(code: string, options: { language?: CodeLanguage; timeoutMs?: number; signal?: AbortSignal }): Promise<InterpreterExecution> };
}

function hasInterpreter(sandbox: unknown): sandbox is InterpreterSandbox {
  const code = (sandbox as { code?: { run?: unknown } }).code;
  return typeof code?.run === "function";
}

/** The interpreter is not there (not its template, or no network to reach it): run the code another way. */
const ABSENT = new Set(["code_interpreter_unavailable", "network_unavailable"]);

/**
 * Runs code in the sandbox's code interpreter (long-lived contexts: variables persist between calls) when
 * the SDK has `sandbox.code` and the sandbox answers it; otherwise with `fallback`.
 */
export function interpreterRunner(fallback: CodeRunner): CodeRunner {
  return async (request: CodeRunRequest): Promise<CodeRunOutput> => {
    const sandbox: unknown = request.sandbox;
    if (!hasInterpreter(sandbox)) return fallback(request);
    let execution: InterpreterExecution;
    try {
      execution = await sandbox.code.run(request.code, { language: request.language, timeoutMs: request.timeoutMs, signal: request.signal });
    } catch (err) {
      if (err instanceof StasisError && ABSENT.has(err.code)) return fallback(request);
      throw err;
    }
    return boundExecution(execution, request);
  };
}

const FIELDS = ["text", "png", "jpeg", "svg", "html", "markdown"] as const;

/** The interpreter's output within the tool's bounds: logs head and tail, results up to the byte budget. */
export function boundExecution(execution: InterpreterExecution, request: Pick<CodeRunRequest, "maxOutputChars" | "maxResultBytes">): CodeRunOutput {
  const stdout = new HeadTail(request.maxOutputChars);
  const stderr = new HeadTail(request.maxOutputChars);
  for (const piece of execution.logs.stdout) stdout.push(piece);
  for (const piece of execution.logs.stderr) stderr.push(piece);
  let used = 0;
  let truncated = stdout.truncated || stderr.truncated;
  const results: CodeDisplay[] = execution.results.map((r) => {
    const kept: CodeDisplay = { isMainResult: r.isMainResult === true };
    for (const field of FIELDS) {
      const value = r[field];
      if (typeof value !== "string") continue;
      if (used + value.length > request.maxResultBytes) {
        truncated = true;
        kept.text = `[${field} left out: the run's results exceeded ${request.maxResultBytes} bytes]`;
        continue;
      }
      used += value.length;
      if (field !== "text" || kept.text === undefined) kept[field] = value;
    }
    return kept;
  });
  return { stdout: stdout.text(), stderr: stderr.text(), truncated, results, error: execution.error };
}
