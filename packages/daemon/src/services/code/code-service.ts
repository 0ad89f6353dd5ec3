import type { CodeContext, CodeContextList, CodeEvent, CreateCodeContextRequest, RunCodeRequest } from "@stasis/protocol";
import { CreateCodeContextRequestSchema } from "@stasis/protocol";
import { ApiError } from "../../errors/api-error.js";
import { LineSplitter } from "../../runtime/line-splitter.js";
import type { SandboxService } from "../sandbox-service.js";
import { CodeContextSchema } from "@stasis/protocol";
import { WireContextListSchema, WireEventSchema, toCodeEvent, type WireEvent } from "./code-wire.js";
import { interpreterRequest, readBounded, replyError } from "./interpreter-client.js";

/** One line of a run (a PNG chart is base64 in one line): bigger is refused, never buffered. */
export const MAX_CODE_LINE_BYTES = 32 * 1024 * 1024;

/**
 * Stasis's code interpreter API, served by the server inside the sandbox (the code-interpreter template):
 * the daemon wakes the sandbox, holds it awake for the call, speaks the server's wire protocol on the
 * sandbox's address and turns its untrusted replies into validated Stasis events.
 */
export class CodeService {
  constructor(private readonly sandboxes: SandboxService) {}

  /** Wakes the sandbox (under its lock, shared with other requests) and keeps it awake until release. */
  private async open(id: string): Promise<{ address: string; release: () => void }> {
    this.sandboxes.get(id);
    const release = this.sandboxes.hold(id);
    try {
      await this.sandboxes.acquire(id);
      const address = this.sandboxes.networkOf(id).address;
      if (!address) throw new ApiError("network_unavailable", `sandbox ${id} has no network, so no code interpreter can be reached`);
      return { address, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  async *run(id: string, req: RunCodeRequest, signal: AbortSignal): AsyncGenerator<CodeEvent> {
    const { address, release } = await this.open(id);
    try {
      const body = {
        code: req.code,
        ...(req.contextId ? { context_id: req.contextId } : { language: req.language ?? "python" }),
        ...(req.env ? { env_vars: req.env } : {}),
        ...(req.timeoutMs ? { timeout_ms: req.timeoutMs } : {}),
      };
      const reply = await interpreterRequest(address, "POST", "/execute", body, signal);
      if (reply.status !== 200) throw await replyError(reply);
      let count: number | null = null;
      let ended = false;
      const pending: WireEvent[] = [];
      let refused: string | null = null;
      const splitter = new LineSplitter(
        MAX_CODE_LINE_BYTES,
        (line) => {
          if (refused) return;
          let value: unknown;
          try {
            value = JSON.parse(line.toString("utf8"));
          } catch {
            refused = "a line that is not JSON";
            return;
          }
          const parsed = WireEventSchema.safeParse(value);
          if (!parsed.success) refused = `a malformed event (${parsed.error.issues[0]?.message ?? "invalid"})`;
          else pending.push(parsed.data);
        },
        (bytes) => {
          refused = `a line of ${bytes} bytes (more than ${MAX_CODE_LINE_BYTES})`;
        },
      );
      try {
        for await (const chunk of reply.body as AsyncIterable<Buffer>) {
          splitter.push(chunk);
          if (refused) throw new ApiError("code_interpreter_failed", `the code interpreter sent ${refused}; the run was abandoned`);
          while (pending.length > 0) {
            const e = pending.shift()!;
            if (e.type === "number_of_executions") count = e.execution_count;
            if (e.type === "end_of_execution") ended = true;
            const event = ended ? null : toCodeEvent(e);
            if (event) yield event;
          }
          if (ended) break;
        }
      } finally {
        reply.body.destroy();
      }
      if (!ended) throw new ApiError("code_interpreter_failed", "the code interpreter ended the run's stream early (did its server die?)");
      yield { type: "end", executionCount: count };
    } finally {
      release();
    }
  }

  async listContexts(id: string): Promise<CodeContextList> {
    const value = await this.call(id, "GET", "/contexts");
    const parsed = WireContextListSchema.safeParse(value);
    if (!parsed.success) throw new ApiError("code_interpreter_failed", "the code interpreter sent a malformed list of contexts");
    return { contexts: parsed.data };
  }

  async createContext(id: string, request: CreateCodeContextRequest): Promise<CodeContext> {
    const req = CreateCodeContextRequestSchema.parse(request);
    const parsed = CodeContextSchema.safeParse(await this.call(id, "POST", "/contexts", { language: req.language, ...(req.cwd ? { cwd: req.cwd } : {}) }));
    if (!parsed.success) throw new ApiError("code_interpreter_failed", "the code interpreter sent a malformed context");
    return parsed.data;
  }

  async deleteContext(id: string, contextId: string): Promise<void> {
    await this.call(id, "DELETE", `/contexts/${contextId}`);
  }

  async restartContext(id: string, contextId: string): Promise<void> {
    await this.call(id, "POST", `/contexts/${contextId}/restart`, {});
  }

  async interruptContext(id: string, contextId: string): Promise<void> {
    await this.call(id, "POST", `/contexts/${contextId}/interrupt`, {});
  }

  /** A plain call: JSON (or nothing) back. contextId reaches here only validated as a UUID. */
  private async call(id: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const { address, release } = await this.open(id);
    try {
      const reply = await interpreterRequest(address, method, path, body);
      if (reply.status < 200 || reply.status > 299) throw await replyError(reply);
      const text = await readBounded(reply.body);
      if (!text) return null;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new ApiError("code_interpreter_failed", "the code interpreter sent a reply that is not JSON");
      }
    } finally {
      release();
    }
  }
}
