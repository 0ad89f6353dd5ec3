import { ConnectionError, Sandbox, SandboxNotRunningError, type PtyExit, type PtyHandle } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { note, type Context } from "../output.js";

/**
 * `stasis shell ID`: this terminal, in raw mode, becomes a terminal in the sandbox: keystrokes go in as
 * typed, the size follows SIGWINCH, and the exit code is the shell's. The terminal outlives this
 * client: a lost connection is re-attached, and a sandbox that hibernates is woken by the next key.
 */
export async function shell(cmd: CommandOf<"shell">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const stdin = ctx.io.stdin as NodeJS.ReadStream;
  const stdout = ctx.io.stdout as NodeJS.WriteStream;
  const size = () => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 });
  const onData = (data: Uint8Array) => void stdout.write(data);

  let handle: PtyHandle = cmd.pid
    ? await sandbox.pty.connect(cmd.pid, { onData })
    : await sandbox.pty.create({ ...size(), onData, ...(cmd.cwd ? { cwd: cmd.cwd } : {}), ...(cmd.user ? { user: cmd.user } : {}) });
  if (cmd.pid) handle.resize(size());
  if (!ctx.json) note(ctx, `stasis: terminal ${handle.pid} in ${cmd.id} (reattach: stasis shell ${cmd.id} --pid ${handle.pid})`);

  let asleep = false;
  let held: Buffer[] = [];
  const onKeys = (chunk: Buffer | string) => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (asleep) held.push(bytes);
    else handle.sendInput(bytes);
  };
  const onResize = () => handle.resize(size());
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  stdin.on("data", onKeys);
  stdin.resume();
  process.on("SIGWINCH", onResize);
  try {
    for (let reconnects = 0; ; ) {
      let exit: PtyExit;
      try {
        exit = await handle.wait();
      } catch (err) {
        if (err instanceof SandboxNotRunningError) {
          // Hibernated: stay asleep until a key is pressed, then wake it by re-attaching.
          asleep = true;
          stdout.write("\r\n[stasis: the sandbox hibernated; press a key to wake it]\r\n");
          while (held.length === 0) await new Promise((r) => stdin.once("data", r));
        } else if (!(err instanceof ConnectionError) || ++reconnects > 5) {
          throw err;
        } else {
          await new Promise((r) => setTimeout(r, 500 * reconnects));
        }
        handle = await sandbox.pty.connect(handle.pid, { onData, replay: false });
        handle.resize(size());
        asleep = false;
        for (const keys of held) handle.sendInput(keys);
        held = [];
        continue;
      }
      return exit.signal ? 128 + signalNumber(exit.signal) : Math.min(Math.max(exit.exitCode, 0), 255);
    }
  } finally {
    process.off("SIGWINCH", onResize);
    stdin.off("data", onKeys);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  }
}

const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
function signalNumber(name: string): number {
  return signals[name] ?? (Number(/\d+/.exec(name)?.[0]) || 0);
}
