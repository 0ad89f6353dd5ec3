import { Sandbox } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { printJson, table, time, write, type Context } from "../output.js";

export async function ps(cmd: CommandOf<"ps">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const processes = await sandbox.commands.list();
  if (ctx.json) {
    await printJson(ctx, processes);
    return 0;
  }
  const rows = processes.map((p) => [
    String(p.pid),
    p.running ? "running" : p.signal ? `killed ${p.signal}` : `exit ${p.exitCode ?? "?"}`,
    time(p.startedAt),
    p.tag ?? "-",
    p.cmd.join(" "),
  ]);
  await write(ctx.io.stdout, table(["PID", "STATUS", "STARTED", "TAG", "COMMAND"], rows));
  return 0;
}

export async function killProcess(cmd: CommandOf<"kill-process">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const handle = await sandbox.commands.connect(cmd.pid);
  if (cmd.signal === "SIGKILL") await handle.kill();
  else await handle.signal(cmd.signal);
  return 0;
}
