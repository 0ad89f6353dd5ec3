import { rmSync } from "node:fs";
import { Sandbox } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { mib } from "../format.js";
import { diskUsage, sleep, time } from "../host.js";

function expectHi(stdout: string, what: string): void {
  if (stdout.trim() !== "hi") throw new Error(`${what} printed ${JSON.stringify(stdout)} instead of "hi"`);
}

/** A Python process holding `mb` MiB of random (incompressible, every page touched) bytes; prints "ready". */
export const holder = (mb: number) => `import os,sys,time\nb=bytearray(os.urandom(${mb}*1024*1024))\nprint("ready",flush=True)\nwhile True: time.sleep(3600)`;

/** Waits until a background process has printed `text` (its output is replayed from the start). */
async function waitForOutput(s: Sandbox, pid: number, text: string): Promise<void> {
  const stream = (await s.commands.connect(pid)).stream();
  let seen = "";
  const deadline = Date.now() + 120_000;
  try {
    for await (const ev of stream) {
      if (ev.type === "stdout") seen += ev.data;
      if (seen.includes(text)) return;
      if (ev.type === "exit" || Date.now() > deadline) break;
    }
  } finally {
    stream.close();
  }
  throw new Error(`the holder never printed '${text}' (got ${JSON.stringify(seen.slice(-200))})`);
}

/**
 * Hibernated tier (gVisor), one working set: hibernate, image size, the resume call and the first command
 * after hibernation, fork; against raw `runsc checkpoint` / `runsc restore --detach` (+ exec) of the same
 * Python holder in a plain container.
 */
async function hibernation(ctx: BenchContext, mb: number): Promise<void> {
  ctx.log(`\n# hibernation, gvisor, ${mb} MiB working set`);
  const { hibernateCycles: n, sleepMs } = ctx.profile;
  const memoryMiB = Math.max(512, mb * 3);
  const s = await Sandbox.create({ runtime: "gvisor", memoryMiB, idleTimeoutMs: 0, hibernateAfterMs: 0, ...ctx.conn });
  const hibernate: number[] = [];
  const image: number[] = [];
  const wakeCall: number[] = [];
  const wakeCommand: number[] = [];
  const fork: number[] = [];
  try {
    await s.files.write("/root/holder.py", holder(mb));
    const proc = await s.commands.start("exec python3 -u /root/holder.py");
    await waitForOutput(s, proc.pid, "ready");
    for (let i = 0; i < n; i++) {
      hibernate.push(await time(() => s.hibernate()));
      image.push(mib(await diskUsage(`${ctx.daemon.dataDir}/sandboxes/${s.id}/checkpoint`)));
      await sleep(sleepMs);
      wakeCall.push(await time(() => s.resume()));
      await s.hibernate();
      await sleep(sleepMs);
      wakeCommand.push(await time(async () => expectHi((await s.commands.run("echo hi")).stdout, "the restored sandbox")));
    }
    for (let i = 0; i < ctx.profile.forks; i++) {
      let clones: Sandbox[] = [];
      fork.push(await time(async () => (clones = await s.fork(1))));
      await Promise.all(clones.map((c) => c.kill()));
    }
  } finally {
    await s.kill().catch(() => undefined);
  }

  // Raw: the same holder in a plain runsc container, checkpointed once; then each cycle restores that image
  // (timed), runs `exec echo hi` in the restored container (timed), and checkpoints it again (timed).
  const raw = ctx.raw("gvisor", "restore");
  const bundle = await raw.bundle(`holder-${mb}`, ["python3", "-u", "-c", holder(mb)], { memoryBytes: memoryMiB * 1048576 });
  const id = ctx.id(`hold-${mb}`);
  const { stdoutFd, fifo } = await raw.start(bundle, id);
  // Like the sandbox: checkpointed only once the holder says its bytes are in place (its RSS crosses the
  // working set while Python still holds the temporary copy of os.urandom's result as well).
  await raw.waitForOutput(fifo, "ready");
  const base = `${bundle}/image`;
  const rawCheckpoint: number[] = [];
  const rawImage: number[] = [];
  const rawRestore: number[] = [];
  const rawRestoreExec: number[] = [];
  rawCheckpoint.push(await raw.checkpoint(id, base));
  rawImage.push(mib(await diskUsage(base)));
  await sleep(300);
  await raw.remove(id);
  for (let i = 0; i < n; i++) {
    const rid = ctx.id(`hold-${mb}-r${i}`);
    const restore = await raw.restore(bundle, base, rid, stdoutFd);
    const exec = await time(async () => expectHi(await raw.exec(rid, ["/bin/echo", "hi"]), "the restored raw container"));
    rawRestore.push(restore);
    rawRestoreExec.push(restore + exec);
    if (i < n - 1) {
      const again = `${bundle}/image-${i}`;
      rawCheckpoint.push(await raw.checkpoint(rid, again));
      rawImage.push(mib(await diskUsage(again)));
      await raw.remove(rid);
      rmSync(again, { recursive: true, force: true });
    } else {
      await sleep(300);
      await raw.remove(rid);
    }
  }
  const forkBaseline = rawRestore.map((r, i) => r + (rawCheckpoint[i] ?? rawCheckpoint[0] ?? NaN));

  const label = `gvisor ${mb} MiB`;
  const rec = (key: string, what: string, unit: "ms" | "MiB", samples: number[], baseline?: { label: string; samples: number[] }) =>
    ctx.rec.record({ id: `gvisor.hibernation.${mb}.${key}`, section: "hibernation", scenario: "hibernation", label: `${label}: ${what}`, unit, samples, ...(baseline ? { baseline } : {}) });
  rec("hibernate", "hibernate (SDK)", "ms", hibernate, { label: "raw 'runsc checkpoint --compression=none'", samples: rawCheckpoint });
  rec("image", "checkpoint image size", "MiB", image, { label: "raw checkpoint image", samples: rawImage });
  rec("resume", "resume call from hibernated (SDK)", "ms", wakeCall, { label: "raw 'runsc restore --detach'", samples: rawRestore });
  rec("first-command", "first 'echo hi' after hibernation (SDK, restore included)", "ms", wakeCommand, { label: "raw 'runsc restore --detach' + 'runsc exec echo hi'", samples: rawRestoreExec });
  rec("fork", "fork, 1 copy (SDK; the source is restored too)", "ms", fork, { label: "raw 'runsc checkpoint' + one 'runsc restore' (source not restored)", samples: forkBaseline });
}

export async function hibernationScenario(ctx: BenchContext): Promise<void> {
  for (const mb of ctx.profile.workingSetsMiB) await hibernation(ctx, mb);
}
