import type { AgentClient } from "../../agent-client/agent-client.js";

/**
 * The sandbox's create-time env as a file, for processes that started before the sandbox existed (a
 * snapshot template's start command, such as the code interpreter, which applies it to every run).
 */
export const SANDBOX_ENV_FILE = "/run/stasis/env.json";

export async function writeSandboxEnv(agent: AgentClient, env: Record<string, string>): Promise<void> {
  const handle = await agent.writeOpen({ path: SANDBOX_ENV_FILE, mode: 0o644, parents: true });
  try {
    await agent.writeChunk(handle, Buffer.from(JSON.stringify(env)));
    await agent.writeClose(handle);
  } catch (err) {
    await agent.writeAbort(handle).catch(() => {});
    throw err;
  }
}
