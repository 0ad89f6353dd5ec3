import type { Sandbox } from "@stasis/protocol";

/** E2B's clientID: one node serves every sandbox here. */
export const CLIENT_ID = "stasis";

/**
 * Whether E2B sees the sandbox as paused. Only a sandbox that was asked to pause (or paused at its
 * lifetime's end, E2B's autoPause) is; one that Stasis put to sleep because it was idle is running as far
 * as E2B knows, since any request wakes it.
 */
export function isE2bPaused(s: Sandbox): boolean {
  const asleep = s.state === "paused" || s.state === "hibernating" || s.state === "hibernated";
  return asleep && s.standbyReason !== "idle";
}

/** Sandboxes that are gone for E2B (killed, expired, failed): answered as not found. */
export function isE2bVisible(s: Sandbox): boolean {
  return s.state !== "stopped" && s.state !== "failed" && s.state !== "stopping";
}

export function e2bState(s: Sandbox): "running" | "paused" {
  return isE2bPaused(s) ? "paused" : "running";
}
