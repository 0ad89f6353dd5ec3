/** Reads the host pid from an OCI runtime's `state` output (runsc and crun print the same JSON). */
export function runningPidFromState(stdout: string): number | null {
  try {
    const state = JSON.parse(stdout) as { pid?: unknown; status?: unknown };
    return state.status === "running" && typeof state.pid === "number" ? state.pid : null;
  } catch {
    return null;
  }
}
