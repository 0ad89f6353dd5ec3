import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { freezerWrite, sleep, time } from "../host.js";
import type { RuntimeName } from "../raw/runtime.js";

/** What a sample times after the pause: a shell builtin, a command that starts a process, or the resume call alone. */
const KINDS = ["echo", "process", "resume"] as const;
type Kind = (typeof KINDS)[number];
type Load = "idle" | "busy";

/** A CPU-bound process that keeps running across pauses (the busy sandboxes' and raw containers'). */
const BUSY = ["python3", "-c", "while True: pass"];
/**
 * After a sample, a sandbox runs this long before it is paused again: an agent thinks between commands,
 * and a sandbox that pauses on its own has been idle for a while, so the agent's spare shell is back.
 */
const SETTLE_MS = 200;

/** One thing that is paused and woken: a Stasis sandbox or a raw container, idle or busy. */
interface Subject {
  runtime: RuntimeName;
  load: Load;
  raw: boolean;
  samples: Record<Kind, number[]>;
  pause(): Promise<void>;
  /** Wakes it as `kind` says; the milliseconds until the command's answer (or the wake's). */
  measure(kind: Kind): Promise<number>;
  settle(): Promise<void>;
  close(): Promise<void>;
}

function expectHi(stdout: string, what: string): void {
  if (stdout.trim() !== "hi") throw new Error(`${what} printed ${JSON.stringify(stdout)} instead of "hi"`);
}

function expectHostname(stdout: string, what: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(stdout.trim())) throw new Error(`${what}: 'cat /etc/hostname' printed ${JSON.stringify(stdout)}`);
}

const emptySamples = (): Record<Kind, number[]> => ({ echo: [], process: [], resume: [] });

async function stasisSubject(ctx: BenchContext, runtime: RuntimeName, load: Load): Promise<Subject> {
  const s = await Sandbox.create({ runtime, idleTimeoutMs: 0, ...ctx.conn });
  const what = `the ${load} ${runtime} sandbox`;
  try {
    await s.commands.run("echo hi");
    if (load === "busy") await s.commands.start(BUSY.map((a) => `'${a}'`).join(" "));
    await sleep(SETTLE_MS);
  } catch (err) {
    await s.kill().catch(() => undefined);
    throw err;
  }
  return {
    runtime,
    load,
    raw: false,
    samples: emptySamples(),
    pause: async () => void (await s.pause()),
    measure: (kind) =>
      time(async () => {
        if (kind === "echo") expectHi((await s.commands.run("echo hi")).stdout, what);
        else if (kind === "process") expectHostname((await s.commands.run("cat /etc/hostname")).stdout, what);
        else await s.resume();
      }),
    settle: () => sleep(SETTLE_MS),
    async close() {
      try {
        // The busy process must have lived through every pause, or the busy rows timed an idle sandbox.
        if (load === "busy" && (await s.commands.run("pgrep -f '[w]hile True'")).exitCode !== 0) throw new Error(`${what}: its busy process is gone`);
      } finally {
        await s.kill().catch(() => undefined);
      }
    },
  };
}

async function rawSubject(ctx: BenchContext, runtime: RuntimeName, load: Load): Promise<Subject> {
  const raw = ctx.raw(runtime);
  const id = ctx.id(`pause-${runtime}-${load}`);
  const bundle = await raw.bundle(`pause-${load}`, load === "busy" ? BUSY : ["/bin/sleep", "3600"], { cgroupId: id });
  await raw.start(bundle, id);
  const cgroup = raw.cgroupPath(id);
  const what = `raw ${raw.tool} exec (${load})`;
  return {
    runtime,
    load,
    raw: true,
    samples: emptySamples(),
    pause: async () => freezerWrite(cgroup, true),
    measure: (kind) =>
      time(async () => {
        freezerWrite(cgroup, false);
        if (kind === "echo") expectHi(await raw.exec(id, ["/bin/echo", "hi"]), what);
        else if (kind === "process") expectHostname(await raw.exec(id, ["cat", "/etc/hostname"]), what);
      }),
    settle: async () => undefined,
    async close() {
      // A frozen container cannot be stopped.
      freezerWrite(cgroup, false);
      await raw.remove(id);
    },
  };
}

/**
 * Paused tier, as users meet it: sandboxes (idle, and with a CPU-bound process inside) sleep for
 * `pauseMs` (>= 1 s) and are then woken by their first command (`echo hi`, a shell builtin, or
 * `cat /etc/hostname`, which starts a process) or by the resume call alone. Beside each, a raw container
 * (idle, or running the same busy process) frozen through its cgroup as long: thaw + `exec`, or the bare
 * thaw. All subjects sleep at once, then each is measured while every other one stays frozen.
 */
export async function pausedScenario(ctx: BenchContext): Promise<void> {
  const { pauses: n, pauseMs } = ctx.profile;
  const loads = (["idle", "busy"] as const).filter((l) => ctx.wants("paused", l));
  ctx.log(`\n# resume from paused (${pauseMs / 1000} s pauses; ${loads.join(" and ")})`);
  const subjects: Subject[] = [];
  try {
    for (const runtime of ["gvisor", "crun"] as const) {
      for (const load of loads) {
        subjects.push(await stasisSubject(ctx, runtime, load));
        subjects.push(await rawSubject(ctx, runtime, load));
      }
    }
    for (const subject of subjects) await subject.pause();
    for (let i = 0; i < n * KINDS.length; i++) {
      const kind = KINDS[i % KINDS.length]!;
      await sleep(pauseMs);
      for (const subject of subjects) {
        subject.samples[kind].push(await subject.measure(kind));
        await subject.settle();
        await subject.pause();
      }
    }
  } finally {
    for (const subject of subjects) {
      await subject.close().catch((err: unknown) => ctx.log(`  !! ${err instanceof Error ? err.message : String(err)}`));
    }
  }
  const secs = `${pauseMs / 1000} s`;
  for (const stasis of subjects.filter((s) => !s.raw)) {
    const raw = subjects.find((s) => s.raw && s.runtime === stasis.runtime && s.load === stasis.load)!;
    const tool = stasis.runtime === "gvisor" ? "runsc" : "crun";
    const prefix = `${stasis.runtime}.paused${stasis.load === "busy" ? ".busy" : ""}`;
    const inside = stasis.load === "busy" ? ", a busy process inside" : "";
    const rec = (key: string, label: string, kind: Kind, baseline: string) =>
      ctx.rec.record({ id: `${prefix}.${key}`, section: "paused", scenario: "paused", label: `${stasis.runtime}: ${label} after a ${secs} pause${inside}`, unit: "ms", samples: stasis.samples[kind], baseline: { label: baseline, samples: raw.samples[kind] } });
    rec("first-command", "first 'echo hi' (SDK, wake included)", "echo", `raw freezer thaw + '${tool} exec echo hi'`);
    rec("first-process", "first 'cat /etc/hostname' (SDK, wake included)", "process", `raw freezer thaw + '${tool} exec cat /etc/hostname'`);
    rec("resume", "resume call (SDK)", "resume", "raw freezer thaw (cgroup write until it reads back)");
  }
}
