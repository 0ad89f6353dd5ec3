import { Secrets } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { errorLine, note, printJson, table, time, write, type Context } from "../output.js";

/** The daemon refuses longer values; reading stops a little past that so a wrong pipe cannot fill memory. */
const MAX_VALUE_BYTES = 16 * 1024;

async function readValue(ctx: Context): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.io.stdin) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    if (total > MAX_VALUE_BYTES + 2) throw new Error(`the value on stdin is longer than ${MAX_VALUE_BYTES} bytes`);
    chunks.push(buf);
  }
  // `echo "$TOKEN" | stasis secret set ...` adds a newline that is no part of the token.
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

export async function set(cmd: CommandOf<"secret.set">, ctx: Context): Promise<number> {
  const value = "stdin" in cmd.value ? await readValue(ctx) : cmd.value.text;
  const secret = await Secrets.set(cmd.name, { value, hosts: cmd.hosts, ...ctx.conn });
  if (ctx.json) await printJson(ctx, secret);
  else note(ctx, `secret ${secret.name} set for ${secret.hosts.join(", ")}`);
  return 0;
}

export async function list(_cmd: CommandOf<"secret.list">, ctx: Context): Promise<number> {
  const secrets = await Secrets.list(ctx.conn);
  if (ctx.json) await printJson(ctx, secrets);
  else await write(ctx.io.stdout, table(["NAME", "HOSTS", "UPDATED"], secrets.map((s) => [s.name, s.hosts.join(","), time(s.updatedAt)])));
  return 0;
}

export async function rm(cmd: CommandOf<"secret.rm">, ctx: Context): Promise<number> {
  let failed = false;
  // One at a time, reporting each, as `e2b key revoke` does.
  for (const name of cmd.names) {
    try {
      await Secrets.delete(name, ctx.conn);
      note(ctx, `deleted ${name}`);
    } catch (err) {
      failed = true;
      note(ctx, errorLine(err));
    }
  }
  return failed ? 1 : 0;
}
