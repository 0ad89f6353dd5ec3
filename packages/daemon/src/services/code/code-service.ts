import type { CodeContext, CodeContextList, CodeEvent, CreateCodeContextRequest, RunCodeRequest } from "@stasis/protocol";
import { CodeContextSchema, CreateCodeContextRequestSchema } from "@stasis/protocol";
import type { Socket } from "node:net";
import { ApiError } from "../../errors/api-error.js";
import type { PreviewService } from "../preview-service.js";
import type { SandboxService } from "../sandbox-service.js";
import { WireContextListSchema } from "./code-wire.js";
import { InterpreterClient, readBounded, replyError, settle } from "./interpreter-client.js";
import { readRun } from "./run-stream.js";

/**
 * Stasis's code interpreter API, served by the server inside the sandbox (the code-interpreter template):
 * the daemon wakes the sandbox, holds it awake for the call, speaks the server's wire protocol on the
 * sandbox's address and turns its untrusted replies into validated Stasis events.
 */
export class CodeService {
  private readonly client: InterpreterClient;

  constructor(
    private readonly sandboxes: SandboxService,
    /** Wakes and holds the sandbox and registers the connections into it, as for the owner's port-forwards. */
    private readonly ports: Pick<PreviewService, "openAsOwner" | "markIdle">,
  ) {
    this.client = new InterpreterClient((socket) => this.ports.markIdle(socket));
  }

  private async open(id: string): Promise<{ address: string; release: () => void; track: (socket: Socket) => void }> {
    const target = await this.ports.openAsOwner(id);
    return { address: target.address, release: target.release, track: (socket) => target.track(socket, { idle: false }) };
  }

  async *run(id: string, req: RunCodeRequest, signal: AbortSignal): AsyncGenerator<CodeEvent> {
    const { address, release, track } = await this.open(id);
    try {
      // The interpreter started in the template's snapshot, before this sandbox had its env: the sandbox's
      // variables (secrets' placeholders included) come with every run, the run's own over them.
      const env = { ...this.sandboxes.get(id).env, ...req.env };
      const body = {
        code: req.code,
        ...(req.contextId ? { context_id: req.contextId } : { language: req.language ?? "python" }),
        ...(Object.keys(env).length > 0 ? { env_vars: env } : {}),
        ...(req.timeoutMs ? { timeout_ms: req.timeoutMs } : {}),
      };
      const reply = await this.client.request(address, "POST", "/execute", body, signal, track);
      if (reply.status !== 200) throw await replyError(reply);
      let ended = false;
      try {
        // Not destroyed when the read stops at the run's last line: the connection is kept for the next run.
        yield* readRun(reply.body.iterator({ destroyOnReturn: false }));
        ended = true;
      } finally {
        // A run left early (the client went away, a bad line) closes its connection: the server interrupts it.
        if (ended) settle(reply.body);
        else reply.body.destroy();
      }
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
    const { address, release, track } = await this.open(id);
    try {
      const reply = await this.client.request(address, method, path, body, undefined, track);
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
