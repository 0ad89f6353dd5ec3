import type { AgentClient } from "../../agent-client/agent-client.js";
import { CheckpointImage } from "../../runtime/checkpoint-image.js";
import { canPause, type ObservedState } from "../../runtime/driver.js";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import { wokenExpiry } from "./records.js";
import type { SandboxCore } from "./sandbox-core.js";

/**
 * After a restart (or a crash): brings every sandbox the store knows to an honest state from what the host
 * shows. Running and paused ones are reattached; hibernated ones stay on disk; a transition the previous
 * daemon did not finish is settled from what is actually there; anything lost is marked failed with the
 * reason (never dropped silently).
 */
export async function reconcile(core: SandboxCore): Promise<void> {
  for (const record of core.deps.store.live()) {
    await reconcileOne(core, record).catch((err: Error) => core.log.error({ sandbox: record.id, err: err.message }, "settling a sandbox after a restart failed"));
  }
}

async function reconcileOne(core: SandboxCore, record: SandboxRecord): Promise<void> {
  const { store, drivers, filesystem } = core.deps;
  const log = core.log.child({ sandbox: record.id });
  const finish = async (state: "stopped" | "failed", reason: string) => {
    log.warn({ reason }, `marked ${state} after a restart`);
    store.setState(record.id, state, reason);
    await core.teardown(record).catch((err: Error) => log.error({ err }, "teardown after restart failed"));
  };
  const driver = drivers.get(record.runtime);
  const image = new CheckpointImage(filesystem.paths(record.id).checkpointDir);
  const ref = core.ref(record.id);
  if (record.state === "stopping") {
    // A delete or expiry was under way: finish tearing down; a retried DELETE removes the record.
    return finish("stopped", "stopped while the daemon restarted");
  }
  if (record.state === "creating" || !driver) return finish("failed", `daemon stopped while the sandbox was ${record.state}`);
  if (record.state === "hibernated") {
    if (image.isComplete()) return;
    return finish("failed", `hibernated, but its checkpoint image ${image.path} is gone`);
  }
  // Read from the host (the cgroup), never by asking the sandbox: a frozen one cannot answer.
  const observed: ObservedState = await driver.observe(ref);
  const alive = observed !== "stopped";
  if (record.state === "hibernating" || record.state === "resuming") {
    if (alive && !(record.state === "hibernating" && image.isComplete())) {
      // The transition did not happen (checkpoint aborted) or completed (restore finished): it runs.
      image.discardPartial();
      if (record.state === "resuming") image.discard();
      if (observed === "paused" && canPause(driver)) await driver.resume(ref);
      store.setStandby(record.id, "running", null, wokenExpiry(record, Date.now()), `the daemon restarted while it was ${record.state}`);
    } else if (image.isComplete()) {
      await driver.destroy(ref).catch(() => {});
      store.setStandby(record.id, "hibernated", { since: record.standbySince ?? Date.now(), reason: record.standbyReason ?? "requested" }, record.expiresAt, `the daemon restarted while it was ${record.state}`);
      log.info("settled as hibernated after a restart");
      return;
    } else {
      return finish("failed", `the daemon stopped while the sandbox was ${record.state}, and no complete checkpoint was left`);
    }
  } else if (!alive) {
    return finish("failed", "the sandbox was not running when the daemon restarted (host reboot or runtime crash)");
  } else if (record.state === "running" && observed === "paused" && canPause(driver)) {
    // Frozen by a pause whose record the previous daemon did not write: thaw, it runs as recorded.
    await driver.resume(ref);
    log.info("thawed a sandbox a stopped daemon had frozen mid-pause");
  } else if (record.state === "paused" && observed === "running") {
    // Thawed by a wake whose record the previous daemon did not write: it runs.
    store.setStandby(record.id, "running", null, wokenExpiry(record, Date.now()), "the daemon restarted while it was waking");
  }
  const state = core.record(record.id).state;
  let agent: AgentClient | null = null;
  try {
    agent = core.agentOn(record.id, driver.reattach(ref));
    // A paused sandbox stays frozen and cannot answer: its agent is checked when it is resumed.
    if (state === "running") await agent.waitReady(5_000);
    core.attach(core.record(record.id), agent);
    log.info({ state }, "reattached to sandbox");
  } catch (err) {
    agent?.close("reattach failed");
    await finish("failed", `could not reattach after a daemon restart: ${(err as Error).message}`);
  }
}
