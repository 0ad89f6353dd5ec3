import type { AgentClient } from "../../agent-client/agent-client.js";
import { CheckpointImage } from "../../runtime/checkpoint-image.js";
import { canPause, type ObservedState, type RuntimeDriver } from "../../runtime/driver.js";
import { isAliveWith } from "../../runtime/run-command.js";
import type { SandboxRecord } from "../../store/sandbox-store.js";
import { forEachLimited, wokenExpiry } from "./records.js";
import type { SandboxCore } from "./sandbox-core.js";

/** Sandboxes settled at once at start: each is a few cgroup reads and at most one runtime call. */
const PARALLEL = 8;
/** How long a reattach whose channel will not open is retried before the sandbox is given up as failed. */
const REATTACH_TRIES = 10;
const REATTACH_PAUSE_MS = 500;
/** How long a checkpoint writer that outlived the previous daemon may still take. */
const WRITER_WAIT_MS = 10 * 60_000;

/**
 * After a restart (or a crash): brings every sandbox the store knows to an honest state from what the host
 * shows. Running and paused ones are reattached; hibernated ones stay on disk; a transition the previous
 * daemon did not finish is settled from what is actually there. The rule: nothing is deleted that is not
 * sure to be dead. A sandbox that cannot be brought back is marked failed with the reason and keeps its
 * files until the user deletes it. Nothing here waits on a sandbox: the daemon starts in seconds.
 */
export async function reconcile(core: SandboxCore): Promise<void> {
  const { store, network } = core.deps;
  const mayRun = (r: SandboxRecord) => r.state !== "hibernated";
  // The table first: sandboxes still running keep their network through the restart.
  await network?.reconcile(store.networkAddresses(), store.live().filter(mayRun)).catch((err: Error) => core.log.error({ err: err.message }, "restoring sandboxes' networks failed"));
  await forEachLimited(store.live(), PARALLEL, (record) =>
    reconcileOne(core, record).catch((err: Error) => core.log.error({ sandbox: record.id, err: err.message }, "settling a sandbox after a restart failed")),
  );
  // Namespaces of sandboxes that settled as hibernated (or were never started) go.
  const running = store.live().filter((r) => r.state === "running" || r.state === "paused" || r.state === "hibernating");
  await network?.prune(new Set(running.map((r) => r.id))).catch((err: Error) => core.log.warn({ err: err.message }, "removing stale sandbox networks failed"));
}

async function reconcileOne(core: SandboxCore, record: SandboxRecord): Promise<void> {
  const { store, drivers, filesystem } = core.deps;
  const log = core.log.child({ sandbox: record.id });
  // A daemon killed during a fork's disk copy leaves the source's filesystem frozen: every write would hang.
  await filesystem.thaw(record.id).catch((err: Error) => log.warn({ err: err.message }, "could not thaw the sandbox's filesystem"));
  const driver = drivers.get(record.runtime);
  const image = new CheckpointImage(filesystem.paths(record.id).checkpointDir);
  if (record.state === "stopping") {
    // A delete or expiry was under way: the user wanted it gone. A retried DELETE removes the record.
    log.warn("finished a delete the previous daemon did not");
    store.setState(record.id, "stopped", "stopped while the daemon restarted");
    await core.teardown(record).catch((err: Error) => log.error({ err }, "teardown after restart failed"));
    return;
  }
  if (record.state === "creating") {
    // Never handed to a client (its create, fork or pool fill did not answer): nobody has its files.
    log.warn("removed a sandbox whose create the previous daemon did not finish");
    store.setState(record.id, "failed", `daemon stopped while the sandbox was ${record.state}`);
    await core.teardown(record).catch((err: Error) => log.error({ err }, "teardown after restart failed"));
    return;
  }
  if (record.state === "hibernated") return settleHibernated(core, record, image);
  if (!driver) {
    // Not configured this time: the runtime may still run it. Left as it is; requests say why they fail.
    log.warn({ runtime: record.runtime }, "sandbox left as it was: its runtime is not configured on this daemon");
    return;
  }
  if (record.state === "hibernating") {
    const writer = image.writerPid();
    if (writer !== null && isAliveWith(writer, image.writerPidPath)) {
      // The checkpoint the previous daemon started is still being written: settle once it ends.
      log.info({ writer }, "a checkpoint is still being written; the sandbox settles once it ends");
      void core.exclusive(record.id, async () => {
        await waitForExit(writer, image.writerPidPath, WRITER_WAIT_MS);
        await settleHibernating(core, driver, core.record(record.id), image, { underLock: true });
      }).catch((err: Error) => log.error({ err: err.message }, "settling a hibernation after a restart failed"));
      return;
    }
    return settleHibernating(core, driver, record, image);
  }
  const observed = await observe(core, driver, record);
  const alive = observed !== "stopped";
  if (record.state === "resuming") {
    if (alive) {
      // The restore happened: it runs from here, and the image it came from is spent.
      image.discardPartial();
      image.discard();
      return runAgain(core, driver, record, observed, `the daemon restarted while it was ${record.state}`);
    }
    if (image.isComplete()) return backToHibernated(core, driver, record);
    return core.fail(record, "the daemon stopped while the sandbox was resuming, and no complete checkpoint was left; its files are kept");
  }
  if (!alive) return core.fail(record, "the sandbox was not running when the daemon restarted (host reboot or runtime crash); its files are kept");
  if (record.state === "running" && observed === "paused" && canPause(driver)) {
    // Frozen by a pause whose record the previous daemon did not write: thaw, it runs as recorded.
    await driver.resume(core.ref(record.id));
    log.info("thawed a sandbox a stopped daemon had frozen mid-pause");
  } else if (record.state === "paused" && observed === "running") {
    // Thawed by a wake whose record the previous daemon did not write: it runs.
    store.setStandby(record.id, "running", null, wokenExpiry(record, Date.now()), "the daemon restarted while it was waking");
  }
  await reattach(core, driver, record.id);
}

/** A hibernated sandbox needs only its image; a whole one left uncommitted by a crash is committed. */
async function settleHibernated(core: SandboxCore, record: SandboxRecord, image: CheckpointImage): Promise<void> {
  if (image.isComplete()) return;
  if (image.isPartialWhole()) {
    await core.deps.filesystem.sync(record.id);
    image.commit();
    return;
  }
  await core.fail(record, `hibernated, but its checkpoint image ${image.path} is gone; its files are kept`);
}

/** A hibernation the previous daemon did not finish: a whole image wins, else a live sandbox runs on. */
async function settleHibernating(core: SandboxCore, driver: RuntimeDriver, record: SandboxRecord, image: CheckpointImage, options: { underLock?: boolean } = {}): Promise<void> {
  if (image.isComplete() || image.isPartialWhole()) {
    if (!image.isComplete()) {
      // The runtime said the image is whole; the daemon died before committing it (disk sync first).
      await core.deps.filesystem.sync(record.id);
      image.commit();
    }
    return backToHibernated(core, driver, record, options);
  }
  const observed = await observe(core, driver, record);
  if (observed === "stopped") {
    image.discardPartial();
    return core.fail(record, "the daemon stopped while the sandbox was hibernating, and no complete checkpoint was left; its files are kept");
  }
  // The checkpoint did not happen (or was torn): the sandbox still runs.
  image.discardPartial();
  await runAgain(core, driver, record, observed, `the daemon restarted while it was ${record.state}`);
}

async function backToHibernated(core: SandboxCore, driver: RuntimeDriver, record: SandboxRecord, options: { underLock?: boolean } = {}): Promise<void> {
  // gVisor ends a checkpointed sandbox itself; what is left of it (a stopped container) goes before any
  // wake (removing the sandbox's containers after a wake would remove the woken one): at start-up off the
  // start's path (a runsc delete takes up to a second) but first on the lock, so a wake waits for it; under
  // the lock already (a checkpoint that outlived the daemon), right away, as a wake may be queued on it.
  const remove = () => driver.destroy(core.ref(record.id)).catch((err: Error) => core.log.warn({ sandbox: record.id, err: err.message }, "removing a checkpointed container failed"));
  if (options.underLock) await remove();
  else void core.exclusive(record.id, remove);
  core.deps.store.setStandby(record.id, "hibernated", { since: record.standbySince ?? Date.now(), reason: record.standbyReason ?? "requested" }, record.expiresAt, `the daemon restarted while it was ${record.state}`);
  core.log.info({ sandbox: record.id }, "settled as hibernated after a restart");
}

/** A sandbox found alive after an unfinished transition: it runs, thawed if a crash left it frozen. */
async function runAgain(core: SandboxCore, driver: RuntimeDriver, record: SandboxRecord, observed: ObservedState, why: string): Promise<void> {
  if (observed === "paused" && canPause(driver)) await driver.resume(core.ref(record.id));
  core.deps.store.setStandby(record.id, "running", null, wokenExpiry(record, Date.now()), why);
  await reattach(core, driver, record.id);
}

/** What the host shows. A host that cannot be read is taken as alive: a wrong "dead" would delete. */
async function observe(core: SandboxCore, driver: RuntimeDriver, record: SandboxRecord): Promise<ObservedState> {
  try {
    return await driver.observe(core.ref(record.id));
  } catch (err) {
    core.log.warn({ sandbox: record.id, err: (err as Error).message }, "could not read the sandbox's state from the host; taking it as alive");
    return record.state === "paused" ? "paused" : "running";
  }
}

/**
 * Reopens the agent channel. The agent's first answer is not waited for (a busy or frozen sandbox answers
 * late, and that is no reason to give it up); a channel that will not open is retried in the background.
 */
async function reattach(core: SandboxCore, driver: RuntimeDriver, id: string): Promise<void> {
  const log = core.log.child({ sandbox: id });
  const open = (): AgentClient => core.agentOn(id, driver.reattach(core.ref(id)));
  let agent: AgentClient;
  try {
    agent = open();
  } catch (err) {
    log.warn({ err: (err as Error).message }, "could not reopen the agent channel; retrying in the background");
    void core.exclusive(id, () => retryReattach(core, open, id, err as Error)).catch((e: Error) => log.error({ err: e.message }, "reattach retries failed"));
    return;
  }
  attachNow(core, id, agent);
}

function attachNow(core: SandboxCore, id: string, agent: AgentClient): void {
  const record = core.record(id);
  // First of all: the previous daemon may have died mid-message; both directions are brought into step.
  // (A paused sandbox answers once it is thawed; until then its agent's version stays unknown.)
  agent.resync(5_000).catch((err: Error) => {
    if (core.record(id).state === "running") core.log.warn({ sandbox: id, err: err.message }, "the agent has not answered since the restart; it stays attached");
  });
  core.attach(record, agent);
  core.log.info({ sandbox: id, state: record.state }, "reattached to sandbox");
}

async function retryReattach(core: SandboxCore, open: () => AgentClient, id: string, first: Error): Promise<void> {
  let last = first;
  for (let attempt = 0; attempt < REATTACH_TRIES; attempt++) {
    await new Promise((r) => setTimeout(r, REATTACH_PAUSE_MS));
    try {
      attachNow(core, id, open());
      return;
    } catch (err) {
      last = err as Error;
    }
  }
  // Alive but unreachable: marked failed and left running for the user to inspect or delete.
  core.deps.store.setState(id, "failed", `could not reattach after a daemon restart: ${last.message}`.slice(0, 4000));
  core.updateGauges();
}

async function waitForExit(pid: number, marker: string, limitMs: number): Promise<void> {
  const until = Date.now() + limitMs;
  while (isAliveWith(pid, marker) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
}
