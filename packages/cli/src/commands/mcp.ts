import type { CommandOf } from "../command.js";
import type { Context } from "../output.js";

/**
 * The MCP server on this process's stdin and stdout until the client closes stdin; the tools reach the
 * daemon like every client command (--api-url, --api-key, STASIS_API_URL, STASIS_API_KEY or the key file).
 * Loaded only here: the MCP SDK is not needed by the other commands.
 */
export async function mcp(_cmd: CommandOf<"mcp">, ctx: Context): Promise<number> {
  const { serveStdio } = await import("@stasis/mcp");
  await serveStdio({ connection: ctx.conn }, { stdin: ctx.io.stdin, stdout: ctx.io.stdout });
  return 0;
}
