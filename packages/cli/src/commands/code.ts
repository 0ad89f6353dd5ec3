import { Sandbox, type CodeResult } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { write, type Context } from "../output.js";

async function readAll(stdin: AsyncIterable<unknown>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stdin) text += typeof chunk === "string" ? chunk : decoder.decode(chunk as Uint8Array, { stream: true });
  return text + decoder.decode();
}

/** How a display value without text shows in a terminal: its formats and sizes. */
function describe(result: CodeResult): string {
  const formats = Object.entries(result)
    .filter(([k, v]) => k !== "isMainResult" && k !== "text" && v !== undefined)
    .map(([k, v]) => (typeof v === "string" ? `${k} (${k === "png" || k === "jpeg" ? Math.floor((v.length * 3) / 4) : v.length} bytes)` : k));
  return `[display: ${formats.join(", ") || "empty"}]`;
}

/** Runs code in a context: output as it comes, the last value on stdout, the exception's traceback on stderr (exit 1). */
export async function runCode(cmd: CommandOf<"run-code">, ctx: Context): Promise<number> {
  const code = cmd.code ?? (await readAll(ctx.io.stdin));
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const controller = new AbortController();
  const interrupt = () => controller.abort(new Error("interrupted"));
  process.on("SIGINT", interrupt);
  let failed = false;
  try {
    for await (const event of sandbox.code.stream(code, { ...(cmd.language ? { language: cmd.language } : {}), ...(cmd.context ? { context: cmd.context } : {}), env: cmd.env, ...(cmd.timeoutMs ? { timeoutMs: cmd.timeoutMs } : {}), signal: controller.signal })) {
      if (ctx.json) await write(ctx.io.stdout, `${JSON.stringify(event)}\n`);
      else if (event.type === "stdout") await write(ctx.io.stdout, event.text);
      else if (event.type === "stderr") await write(ctx.io.stderr, event.text);
      else if (event.type === "result") {
        if (event.result.isMainResult && event.result.text !== undefined) await write(ctx.io.stdout, `${event.result.text}\n`);
        else await write(ctx.io.stderr, `${describe(event.result)}\n`);
      } else if (event.type === "exception") {
        const { name, value, traceback } = event.exception;
        await write(ctx.io.stderr, `${traceback || `${name}: ${value}`}\n`);
      }
      if (event.type === "exception") failed = true;
    }
  } catch (err) {
    if (controller.signal.aborted) return 130;
    throw err;
  } finally {
    process.off("SIGINT", interrupt);
  }
  return failed ? 1 : 0;
}
