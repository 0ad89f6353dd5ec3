import { spawn } from "node:child_process";
import { Sandbox, type PtyHandle } from "@stasis/sdk";
import type { BenchContext } from "../context.js";
import { sleep, time } from "../host.js";
import type { RuntimeName } from "../raw/runtime.js";

/** What runs on both terminals: a raw-mode, no-echo `cat`, so each keystroke comes back exactly once, from a process. */
const ECHO_PROGRAM = "stty raw -echo; echo ready; exec cat";
/** A person types far slower than this; spaced keystrokes are the case to measure. */
const KEY_GAP_MS = 10;

/** Bytes from a terminal, with a wait for a given byte to come back. */
class Echoes {
  private seen = "";
  private waiter: { ch: string; resolve: () => void } | null = null;

  push(data: Uint8Array | string): void {
    this.seen += typeof data === "string" ? data : Buffer.from(data).toString("latin1");
    if (this.waiter && this.seen.includes(this.waiter.ch)) {
      const w = this.waiter;
      this.waiter = null;
      this.seen = "";
      w.resolve();
    }
  }

  /** Resolves when `ch` has come back (what came before it is dropped). */
  next(ch: string, timeoutMs = 10_000): Promise<void> {
    if (this.seen.includes(ch)) {
      this.seen = "";
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`keystroke '${ch}' did not come back within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = { ch, resolve: () => (clearTimeout(timer), resolve()) };
    });
  }
}

async function keystrokes(n: number, send: (ch: string) => void, echoes: Echoes): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n + 5; i++) {
    const ch = String.fromCharCode(97 + (i % 26));
    const ms = await time(async () => {
      const back = echoes.next(ch);
      send(ch);
      await back;
    });
    if (i >= 5) samples.push(ms); // the first few warm both paths
    await sleep(KEY_GAP_MS);
  }
  return samples;
}

/**
 * The raw baseline: the same program on a local pseudo-terminal of this host (util-linux `script`, which
 * relays its stdin to the terminal's master and the master to its stdout), no sandbox, no network.
 */
async function localPty(n: number): Promise<number[]> {
  const child = spawn("script", ["-qfc", ECHO_PROGRAM, "/dev/null"], { stdio: ["pipe", "pipe", "ignore"] });
  const echoes = new Echoes();
  child.stdout.on("data", (d: Buffer) => echoes.push(d));
  try {
    await echoes.next("ready");
    return await keystrokes(n, (ch) => child.stdin.write(ch), echoes);
  } finally {
    child.kill("SIGKILL");
  }
}

/** One key in, its echo out: the WebSocket, the daemon, the agent's terminal and back. */
async function sandboxPty(ctx: BenchContext, runtime: RuntimeName, n: number): Promise<number[]> {
  const s = await Sandbox.create({ runtime, idleTimeoutMs: 0, ...ctx.conn });
  let term: PtyHandle | null = null;
  try {
    const echoes = new Echoes();
    term = await s.pty.create({ cmd: ["/bin/sh", "-c", ECHO_PROGRAM], onData: (d) => echoes.push(d) });
    await echoes.next("ready");
    const t = term;
    return await keystrokes(n, (ch) => t.sendInput(ch), echoes);
  } finally {
    await term?.kill().catch(() => undefined);
    term?.disconnect();
    await s.kill().catch(() => undefined);
  }
}

export async function ptyScenario(ctx: BenchContext): Promise<void> {
  const n = ctx.profile.echoes * 2;
  for (const runtime of ["gvisor", "crun"] as const) {
    ctx.log(`\n# terminal keystroke echo, ${runtime}`);
    const stasis = await sandboxPty(ctx, runtime, n);
    const baseline = await localPty(n);
    ctx.rec.record({
      id: `${runtime}.pty.keystroke`,
      section: "pty",
      scenario: "pty",
      label: `${runtime}: terminal keystroke echo round trip (SDK WebSocket, raw-mode cat)`,
      unit: "ms",
      samples: stasis,
      baseline: { label: "the same keystroke through a local pty on the host ('script' running the same cat)", samples: baseline },
    });
  }
}
