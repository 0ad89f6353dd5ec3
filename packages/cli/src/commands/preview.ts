import { Sandbox } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { printJson, table, write, type Context } from "../output.js";

/** `sandbox url`, `sandbox ports`, `sandbox preview`: the preview URLs of a sandbox's ports. */
export async function run(cmd: CommandOf<"sandbox.url" | "sandbox.ports" | "sandbox.preview">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  if (cmd.kind === "sandbox.url") {
    const url = cmd.sign ? (await sandbox.signUrl(cmd.port, cmd.expiresInS)).url : await sandbox.getUrl(cmd.port);
    if (ctx.json) await printJson(ctx, { url });
    else await write(ctx.io.stdout, `${url}\n`);
    return 0;
  }
  if (cmd.kind === "sandbox.ports") {
    const ports = await sandbox.ports();
    if (ctx.json) await printJson(ctx, ports);
    else await write(ctx.io.stdout, table(["PORT", "URL"], ports.map((p) => [String(p.port), p.url])));
    return 0;
  }
  const info = Object.keys(cmd.change).length > 0 ? await sandbox.setPreview(cmd.change) : await sandbox.getPreview();
  if (ctx.json) await printJson(ctx, info);
  else await write(ctx.io.stdout, `public  ${info.public ? "on" : "off"}\ntoken   ${info.token}\nurl     ${info.urlTemplate}\n`);
  return 0;
}
