import type { PtyParams } from "@stasis/protocol";
import { PTY_WATCH_PROTOCOL } from "../agent-client/agent-protocol.js";
import type { ExecService, OutputEvent } from "./exec-service.js";
import { requireAgentProtocol } from "./exec-service.js";
import type { SandboxService } from "./sandbox-service.js";

/** The most bytes one input call sends (a paste); the agent's limit per message. */
export const MAX_PTY_INPUT_BYTES = 1024 * 1024;

/**
 * An interactive login shell: bash where the sandbox has it, else sh. `exec` keeps the shell's pid the
 * terminal's pid (signals, exit code).
 */
const LOGIN_SHELL = ["/bin/sh", "-c", 'if command -v bash >/dev/null 2>&1; then exec bash -i -l; else exec sh -i -l; fi'];

/**
 * Terminals: processes on a pseudo-terminal in the sandbox's agent, started in the background so that
 * they outlive their clients, a pause and a hibernation (the agent keeps their recent output in its ring
 * for a re-attach). Output flows with the same credit window as any attached process.
 */
export class PtyService {
  constructor(
    private readonly sandboxes: SandboxService,
    private readonly exec: ExecService,
  ) {}

  async start(id: string, params: PtyParams): Promise<{ pid: number }> {
    const cmd = params.cmd ?? LOGIN_SHELL;
    // LANG like envd's terminals: UTF-8 line editing in bash and readline.
    const env = { LANG: "C.UTF-8", ...params.env };
    return this.exec.startBackground(id, { cmd, env, cwd: params.cwd, user: params.user, tag: params.tag, stdin: true }, { cols: params.cols, rows: params.rows });
  }

  /** The terminal's recent output (when `replay`), then its live output until it exits. */
  attach(id: string, pid: number, replay: boolean, signal?: AbortSignal): AsyncGenerator<OutputEvent> {
    return this.exec.attachBytes(id, pid, replay, signal);
  }

  async input(id: string, pid: number, data: Buffer): Promise<void> {
    if (data.length === 0) return;
    await this.exec.writeStdin(id, pid, data, false);
  }

  async resize(id: string, pid: number, cols: number, rows: number): Promise<void> {
    const live = await this.sandboxes.acquire(id);
    requireAgentProtocol(live, PTY_WATCH_PROTOCOL, "terminals");
    await live.agent.resize(pid, cols, rows);
  }

  /** Whether the sandbox went into hibernation (its channel closed under an attached terminal for that). */
  hibernating(id: string): boolean {
    try {
      const state = this.sandboxes.get(id).state;
      return state === "hibernating" || state === "hibernated";
    } catch {
      return false;
    }
  }

  /** Refuses early (before a WebSocket upgrade) what the sandbox's agent cannot do. */
  async check(id: string): Promise<void> {
    requireAgentProtocol(await this.sandboxes.acquire(id), PTY_WATCH_PROTOCOL, "terminals");
  }
}
