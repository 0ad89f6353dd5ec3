import { CodeEventSchema, type CodeContext, type CodeEvent, type CodeException, type CodeLanguage, type CodeResult } from "@stasis/protocol";
import { errorFromBody, protocolError } from "./errors.js";
import { transportError, type HttpClient } from "./http.js";
import { readNdjson } from "./ndjson.js";

export interface RunCodeOptions {
  /** The language's default context. Give this or `context`, not both. Default: python. */
  language?: CodeLanguage;
  /** A context made by `createContext` (or its id). */
  context?: CodeContext | string;
  /** Environment variables for this run only. */
  env?: Record<string, string>;
  /** The run is interrupted after this long; the context keeps its state. */
  timeoutMs?: number;
  signal?: AbortSignal;
  onStdout?: (text: string) => void | Promise<void>;
  onStderr?: (text: string) => void | Promise<void>;
  onResult?: (result: CodeResult) => void | Promise<void>;
  onError?: (exception: CodeException) => void | Promise<void>;
}

/** What a run produced: its results (display values and the last expression's), output, exception and count. */
export class Execution {
  results: CodeResult[] = [];
  logs: { stdout: string[]; stderr: string[] } = { stdout: [], stderr: [] };
  /** The code's exception (name, value, traceback), or null. */
  error: CodeException | null = null;
  executionCount: number | null = null;

  /** The text of the last expression's value, if the code ended with one. */
  get text(): string | undefined {
    return this.results.find((r) => r.isMainResult)?.text;
  }
}

/**
 * `sandbox.code`: run code in long-lived contexts of the sandbox's code interpreter (sandboxes of the
 * `code-interpreter` template). A context keeps variables, imports and the working directory across runs.
 */
export class Code {
  constructor(
    private readonly http: HttpClient,
    private readonly sandboxId: string,
  ) {}

  /** Runs code and collects what it produced; the callbacks see each piece as it arrives. */
  async run(code: string, options: RunCodeOptions = {}): Promise<Execution> {
    const execution = new Execution();
    for await (const event of this.stream(code, options)) {
      switch (event.type) {
        case "stdout":
          execution.logs.stdout.push(event.text);
          await options.onStdout?.(event.text);
          break;
        case "stderr":
          execution.logs.stderr.push(event.text);
          await options.onStderr?.(event.text);
          break;
        case "result":
          execution.results.push(event.result);
          await options.onResult?.(event.result);
          break;
        case "exception":
          execution.error = event.exception;
          await options.onError?.(event.exception);
          break;
        case "end":
          execution.executionCount = event.executionCount;
          break;
      }
    }
    return execution;
  }

  /** The run's events as they come (stdout, stderr, result, exception, then end). Leaving the loop interrupts the run. */
  async *stream(code: string, options: RunCodeOptions = {}): AsyncGenerator<CodeEvent, void, undefined> {
    const { language, context, env, timeoutMs, signal } = options;
    const json = {
      code,
      ...(language ? { language } : {}),
      ...(context ? { contextId: typeof context === "string" ? context : context.id } : {}),
      ...(env ? { env } : {}),
      ...(timeoutMs ? { timeoutMs } : {}),
    };
    const controller = new AbortController();
    const all = signal ? AbortSignal.any([signal, controller.signal]) : controller.signal;
    let ended = false;
    try {
      const { response, requestId } = await this.http.open("runCode", { params: { id: this.sandboxId }, json, signal: all });
      if (!response.body) throw protocolError("code run replied without a body", response.status, requestId);
      for await (const event of readNdjson(response.body, CodeEventSchema, { what: "code run event", status: response.status, requestId })) {
        // After the end, the body is read to its close (it closes right after), so that the connection is
        // kept for the next call rather than cut.
        if (ended) continue;
        if (event.type === "error") throw errorFromBody({ ...event.error, requestId: event.error.requestId ?? requestId });
        ended = event.type === "end";
        yield event;
      }
      if (!ended) throw protocolError("code run ended without an end event", response.status, requestId);
    } catch (err) {
      throw transportError(err, "code run", signal, undefined);
    } finally {
      // Leaving early (a break, an error) aborts the request, which interrupts the run.
      if (!ended) controller.abort();
    }
  }

  async createContext(options: { language?: CodeLanguage; cwd?: string } = {}): Promise<CodeContext> {
    return this.http.json("createCodeContext", { params: { id: this.sandboxId }, json: options });
  }

  async listContexts(): Promise<CodeContext[]> {
    return (await this.http.json("listCodeContexts", { params: { id: this.sandboxId } })).contexts;
  }

  /** Restarts the context's kernel: variables are gone, the id stays. */
  async restartContext(context: CodeContext | string): Promise<void> {
    await this.http.empty("restartCodeContext", { params: { id: this.sandboxId, contextId: idOf(context) } });
  }

  /** Interrupts the code running in the context; its state stays. */
  async interrupt(context: CodeContext | string): Promise<void> {
    await this.http.empty("interruptCodeContext", { params: { id: this.sandboxId, contextId: idOf(context) } });
  }

  async removeContext(context: CodeContext | string): Promise<void> {
    await this.http.empty("deleteCodeContext", { params: { id: this.sandboxId, contextId: idOf(context) } });
  }
}

function idOf(context: CodeContext | string): string {
  return typeof context === "string" ? context : context.id;
}
