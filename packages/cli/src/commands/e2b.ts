import { DEFAULT_API_URL, E2bKeys } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { errorLine, note, printJson, table, time, write, type Context } from "../output.js";

/** The daemon URL the SDK talks to, which is also where the e2b SDK must go (its API and its sandboxes). */
function daemonUrl(ctx: Context): string {
  return (ctx.conn.apiUrl ?? ctx.env.STASIS_API_URL ?? DEFAULT_API_URL).replace(/\/+$/, "");
}

/** Prints the key alone on stdout (for `$(stasis e2b key create)`), and how to use it on stderr. */
export async function keyCreate(cmd: CommandOf<"e2b.key.create">, ctx: Context): Promise<number> {
  const created = await E2bKeys.create({ ...(cmd.name !== undefined ? { name: cmd.name } : {}), ...ctx.conn });
  if (ctx.json) await printJson(ctx, created);
  else await write(ctx.io.stdout, `${created.key}\n`);
  const url = daemonUrl(ctx);
  note(ctx, `E2B key ${created.id} (${created.name}): the key is shown only this once; the daemon keeps only its hash.`);
  note(ctx, "To use it with the e2b SDK:");
  note(ctx, `  export E2B_API_KEY=${created.key} E2B_API_URL=${url} E2B_SANDBOX_URL=${url}`);
  return 0;
}

export async function keyList(_cmd: CommandOf<"e2b.key.list">, ctx: Context): Promise<number> {
  const keys = await E2bKeys.list(ctx.conn);
  if (ctx.json) {
    await printJson(ctx, keys);
    return 0;
  }
  const rows = keys.map((k) => [k.id, k.name, k.prefix, time(k.createdAt), k.lastUsedAt ? time(k.lastUsedAt) : "never"]);
  await write(ctx.io.stdout, table(["ID", "NAME", "PREFIX", "CREATED", "LAST USED"], rows));
  return 0;
}

export async function keyRevoke(cmd: CommandOf<"e2b.key.revoke">, ctx: Context): Promise<number> {
  let failed = false;
  // One at a time, reporting each, as `sandbox kill` does: one unknown id should not hide the others.
  for (const id of cmd.ids) {
    try {
      await E2bKeys.revoke(id, ctx.conn);
      note(ctx, `revoked ${id}`);
    } catch (err) {
      failed = true;
      note(ctx, errorLine(err));
    }
  }
  return failed ? 1 : 0;
}
