import type { AgentClient } from "../../agent-client/agent-client.js";
import { ApiError } from "../../errors/api-error.js";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import type { ResolvedTemplate } from "../../templates/template-store.js";

/**
 * Readies a fresh sandbox for its first command before it is frozen or checkpointed: one shell command
 * through the agent's spare shell warms gVisor's caches for the shell (a fresh sandbox's first command
 * costs ~40 ms more than later ones), then a pause lets the agent start the next spare, which the
 * claimer's first command takes.
 */
export async function warmUp(agent: AgentClient): Promise<void> {
  await execToExit(agent, { cmd: ["/bin/sh", "-c", "true"], env: {}, user: "root" }, 5_000);
  await new Promise((r) => setTimeout(r, 250));
}

/** Runs a short command through the agent to its exit; the output is kept (bounded) for error messages. */
export async function execToExit(agent: AgentClient, args: { cmd: string[]; env: Record<string, string>; user: string; cwd?: string }, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  const { pid } = await agent.exec({ ...args, stdin: false, subscribe: true, window: 65_536 });
  return new Promise((resolve) => {
    let output = "";
    let finished = false;
    const timer = setTimeout(() => done(null), timeoutMs);
    // Events that came before the subscription are replayed inside subscribe(): `done` may run first.
    const unsubscribe = agent.subscribe(pid, (e) => {
      if (e.ev === "out" && output.length < 8192) output += e.data.toString("utf8");
      if (e.ev === "exit") done(e.code);
    });
    function done(code: number | null) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      queueMicrotask(() => unsubscribe());
      if (code === null) agent.signal({ pid, signal: "SIGKILL" }).catch(() => {});
      resolve({ code, output });
    }
  });
}

/**
 * Runs the template's readiness check once, whatever it answers (bounded): a sandbox restored from a
 * snapshot gets its memory back lazily, so the first request to its server pays the page-ins; a warm-pool
 * member does this before it is frozen, so that its claimant's first request does not.
 */
export async function pageIn(record: SandboxRecord, agent: AgentClient, template: ResolvedTemplate): Promise<void> {
  if (!template.ready) return;
  await execToExit(agent, { cmd: ["/bin/sh", "-c", template.ready], env: record.env, user: template.user ?? "root", ...(template.workdir ? { cwd: template.workdir } : {}) }, 10_000);
}

/**
 * Starts the template's start command in the background and waits for its readiness check to pass
 * (or, without one, for the command to stay up a moment). Fails with what the command said if it dies.
 */
export async function startTemplateCommand(record: SandboxRecord, agent: AgentClient, template: ResolvedTemplate, signal?: AbortSignal): Promise<void> {
  if (!template.start) return;
  const user = template.user ?? "root";
  const cwd = template.workdir ? { cwd: template.workdir } : {};
  const { pid } = await agent.exec({ cmd: ["/bin/sh", "-c", template.start], env: record.env, user, ...cwd, stdin: false, subscribe: false, window: 0, tag: "start" });
  const exited = async (): Promise<string | null> => {
    const { processes } = await agent.ps();
    const p = processes.find((x) => x.pid === pid);
    if (!p || !p.running) return `the start command \`${template.start}\` exited${p?.exitCode !== undefined && p.exitCode !== null ? ` with code ${p.exitCode}` : ""}`;
    return null;
  };
  const deadline = Date.now() + (template.readyTimeoutMs ?? 60_000);
  if (!template.ready) {
    await new Promise((r) => setTimeout(r, 500));
    const died = await exited();
    if (died) throw new ApiError("sandbox_failed", died);
    return;
  }
  let last = "";
  for (;;) {
    if (signal?.aborted) throw new ApiError("sandbox_failed", "cancelled while waiting for the readiness check");
    // Each try gets at most 10 s, and never more than what is left of readyTimeoutMs.
    const result = await execToExit(agent, { cmd: ["/bin/sh", "-c", template.ready], env: record.env, user, ...cwd }, Math.max(1_000, Math.min(10_000, deadline - Date.now())));
    if (result.code === 0) return;
    last = result.output.trim().slice(-500);
    const died = await exited();
    if (died) throw new ApiError("sandbox_failed", `${died} before its readiness check \`${template.ready}\` passed${last ? `; the check said: ${last}` : ""}`);
    if (Date.now() > deadline) {
      throw new ApiError("sandbox_failed", `the readiness check \`${template.ready}\` did not pass within ${Math.round((template.readyTimeoutMs ?? 60_000) / 1000)} s${last ? `; it said: ${last}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
