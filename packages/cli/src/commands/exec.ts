import { Sandbox, type CommandEvent, type CommandHandle, type CommandStream } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { write, type Context } from "../output.js";

/** Largest stdin piece per request, well under the daemon's 1 MiB limit for one write. */
const STDIN_PIECE = 256 * 1024;

/** Streams a command's output to this terminal and returns its exit code. */
export async function exec(cmd: CommandOf<"exec">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const request = {
    env: cmd.env,
    ...(cmd.cwd ? { cwd: cmd.cwd } : {}),
    ...(cmd.user ? { user: cmd.user } : {}),
    ...(cmd.timeoutMs !== undefined ? { timeoutMs: cmd.timeoutMs } : {}),
  };
  if (!cmd.stdin) {
    const stream = sandbox.commands.stream(cmd.cmd, request);
    // Ctrl-C ends the stream, and the daemon kills a foreground command whose stream ends.
    return withInterrupt(() => stream.close(), () => pump(stream, ctx));
  }
  // stdin needs a process that outlives one request: start it in the background, attach, then feed it.
  const handle = await sandbox.commands.start(cmd.cmd, { ...request, stdin: true });
  const stream = handle.stream({ replay: true });
  const feeding = feedStdin(handle, ctx);
  try {
    return await withInterrupt(() => void handle.signal("SIGINT").catch(() => {}), () => pump(stream, ctx));
  } finally {
    feeding.stop();
  }
}

async function pump(stream: CommandStream, ctx: Context): Promise<number> {
  let exit: Extract<CommandEvent, { type: "exit" }> | undefined;
  for await (const event of stream) {
    if (event.type === "stdout") await write(ctx.io.stdout, event.data);
    else if (event.type === "stderr") await write(ctx.io.stderr, event.data);
    else if (event.type === "exit") exit = event;
  }
  // No exit event means the stream was closed by Ctrl-C.
  if (!exit) return 130;
  if (exit.timedOut) ctx.io.stderr.write(`stasis: command timed out\n`);
  return Math.min(Math.max(exit.exitCode, 0), 255);
}

async function withInterrupt(onInterrupt: () => void, body: () => Promise<number>): Promise<number> {
  process.on("SIGINT", onInterrupt);
  try {
    return await body();
  } finally {
    process.off("SIGINT", onInterrupt);
  }
}

/** Forwards the terminal's stdin in order; closes the process's stdin at end of input. */
function feedStdin(handle: CommandHandle, ctx: Context): { stop(): void } {
  const stdin = ctx.io.stdin;
  const decoder = new TextDecoder();
  let stopped = false;
  void (async () => {
    try {
      for await (const chunk of stdin) {
        if (stopped) break;
        const text = typeof chunk === "string" ? chunk : decoder.decode(chunk as Uint8Array, { stream: true });
        for (let i = 0; i < text.length; i += STDIN_PIECE) await handle.sendStdin(text.slice(i, i + STDIN_PIECE));
      }
      if (!stopped) await handle.sendStdin(decoder.decode(), { eof: true });
    } catch {
      // The process may exit before reading all its input; its exit status tells the story.
    }
  })();
  return {
    stop() {
      stopped = true;
      // Otherwise an open terminal stdin keeps this CLI alive after the process is gone.
      (stdin as NodeJS.ReadStream).pause?.();
      (stdin as NodeJS.ReadStream).destroy?.();
    },
  };
}
