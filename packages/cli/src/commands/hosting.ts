import { Domains, Sandbox } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { errorLine, note, printJson, table, write, type Context } from "../output.js";

/** `domain add|ls|rm`. */
export async function domains(cmd: CommandOf<"domain.add" | "domain.list" | "domain.rm">, ctx: Context): Promise<number> {
  if (cmd.kind === "domain.add") {
    const domain = await Domains.create({ host: cmd.host, sandboxId: cmd.sandboxId, port: cmd.port, ...ctx.conn });
    if (ctx.json) await printJson(ctx, domain);
    else await write(ctx.io.stdout, `${domain.host} -> ${domain.sandboxId}:${domain.port}\n`);
    return 0;
  }
  if (cmd.kind === "domain.list") {
    const list = await Domains.list(ctx.conn);
    if (ctx.json) await printJson(ctx, { domains: list });
    else await write(ctx.io.stdout, table(["HOST", "SANDBOX", "PORT"], list.map((d) => [d.host, d.sandboxId, String(d.port)])));
    return 0;
  }
  for (const host of cmd.hosts) await Domains.delete(host, ctx.conn);
  return 0;
}

/** `port-forward`: a local listener whose connections go to the sandbox's port, until SIGINT/SIGTERM. */
export async function portForward(cmd: CommandOf<"port-forward">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const forwarding = await sandbox.forwardPort(cmd.port, { localPort: cmd.localPort, host: cmd.address, onError: (err) => note(ctx, `connection refused by the sandbox: ${errorLine(err)}`) });
  if (ctx.json) await printJson(ctx, { host: forwarding.host, port: forwarding.port, sandboxId: cmd.id, sandboxPort: cmd.port });
  else note(ctx, `Forwarding ${forwarding.host}:${forwarding.port} -> ${cmd.id}:${cmd.port} (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await forwarding.close();
  return 0;
}
