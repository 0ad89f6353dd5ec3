import { Sandbox, type SandboxInfo, type StandbyReason } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { errorLine, note, printJson, table, time, timer, write, type Context } from "../output.js";

export async function create(cmd: CommandOf<"sandbox.create">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.create({ ...cmd.request, ...ctx.conn });
  if (ctx.json) await printJson(ctx, sandbox.info);
  else await write(ctx.io.stdout, `${sandbox.id}\n`);
  return 0;
}

export async function list(cmd: CommandOf<"sandbox.list">, ctx: Context): Promise<number> {
  const sandboxes: SandboxInfo[] = [];
  for await (const s of Sandbox.listAll({ state: cmd.state, metadata: cmd.metadata }, ctx.conn)) sandboxes.push(s);
  if (ctx.json) {
    await printJson(ctx, sandboxes);
    return 0;
  }
  const rows = sandboxes.map((s) => [s.id, s.state, s.runtime, s.template, time(s.createdAt), time(s.expiresAt)]);
  await write(ctx.io.stdout, table(["ID", "STATE", "RUNTIME", "TEMPLATE", "CREATED", "EXPIRES"], rows));
  return 0;
}

export async function get(cmd: CommandOf<"sandbox.get">, ctx: Context): Promise<number> {
  const { info } = await Sandbox.connect(cmd.id, ctx.conn);
  if (ctx.json) await printJson(ctx, info);
  else await write(ctx.io.stdout, describe(info));
  return 0;
}

export async function kill(cmd: CommandOf<"sandbox.kill">, ctx: Context): Promise<number> {
  let failed = false;
  // One at a time, reporting each: one missing id should not hide what happened to the others.
  for (const id of cmd.ids) {
    try {
      await Sandbox.kill(id, ctx.conn);
      note(ctx, `killed ${id}`);
    } catch (err) {
      failed = true;
      note(ctx, errorLine(err));
    }
  }
  return failed ? 1 : 0;
}

const standbyCalls = {
  "sandbox.pause": (s: Sandbox) => s.pause(),
  "sandbox.hibernate": (s: Sandbox) => s.hibernate(),
  "sandbox.resume": (s: Sandbox) => s.resume(),
};

/** pause / hibernate / resume: prints each sandbox's new state (or the resources with --json). */
export async function setStandby(cmd: CommandOf<keyof typeof standbyCalls>, ctx: Context): Promise<number> {
  const results: SandboxInfo[] = [];
  for (const id of cmd.ids) results.push(await standbyCalls[cmd.kind](await Sandbox.connect(id, ctx.conn)));
  if (ctx.json) await printJson(ctx, results);
  else await write(ctx.io.stdout, results.map((s) => `${s.id} ${s.state}\n`).join(""));
  return 0;
}

export async function fork(cmd: CommandOf<"sandbox.fork">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const forks = await sandbox.fork(cmd.count);
  if (ctx.json) await printJson(ctx, forks.map((f) => f.info));
  else await write(ctx.io.stdout, forks.map((f) => `${f.id}\n`).join(""));
  return 0;
}

export async function standby(cmd: CommandOf<"sandbox.standby">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const info = await sandbox.setStandbyPolicy(cmd.policy);
  if (ctx.json) await printJson(ctx, info);
  else await write(ctx.io.stdout, `${policy(info)}\n`);
  return 0;
}

/** Changes the policy when flags are given, then prints it (and the address). */
export async function network(cmd: CommandOf<"sandbox.network">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const info = Object.keys(cmd.policy).length > 0 ? await sandbox.setNetwork(cmd.policy) : sandbox.info;
  if (ctx.json) await printJson(ctx, info.network ?? null);
  else {
    const n = info.network;
    const lines = n
      ? [`address   ${n.address ?? "-"}`, `internet  ${n.policy.internet ? "on" : "off"}`, `allowOut  ${n.policy.allowOut.join(", ") || "-"}`, `denyOut   ${n.policy.denyOut.join(", ") || "-"}`, `secrets   ${n.secrets.join(", ") || "-"}`]
      : ["no network"];
    await write(ctx.io.stdout, `${lines.join("\n")}\n`);
  }
  return 0;
}

export async function setTimeout(cmd: CommandOf<"sandbox.timeout">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const info = await sandbox.setTimeout(cmd.timeoutMs);
  if (ctx.json) await printJson(ctx, info);
  else await write(ctx.io.stdout, `${info.expiresAt ?? "-"}\n`);
  return 0;
}

/** The standby settings, spelled as the flags that set them. */
function policy(s: SandboxInfo): string {
  return `idle-timeout=${timer(s.idleTimeoutMs)} hibernate-after=${timer(s.hibernateAfterMs)} on-timeout=${s.onTimeout}`;
}

/** Why a sandbox is in standby, as the state line of `sandbox get` says it: "paused (idle) since ...". */
const standbyReasons: Record<StandbyReason, string> = {
  requested: "on request",
  idle: "idle",
  lifetime: "lifetime ended",
};

const createdVia: Record<SandboxInfo["createdVia"], string> = {
  cold: "booted",
  warm_pool: "from the warm pool",
  snapshot: "restored from the template's snapshot",
  fork: "forked",
};

function describe(s: SandboxInfo): string {
  const pairs = (record: Record<string, string>) =>
    Object.entries(record)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ") || "-";
  const fields: [string, string][] = [
    ["id", s.id],
    ["state", [s.state, s.stateReason && `(${s.stateReason})`, s.standbyReason && `(${standbyReasons[s.standbyReason]})`, s.standbySince && `since ${time(s.standbySince)}`].filter(Boolean).join(" ")],
    ["runtime", s.runtime],
    ["template", s.template],
    ["cpu", String(s.cpu)],
    ["memory", `${s.memoryMiB} MiB`],
    ["disk", `${s.diskMiB} MiB`],
    ["env", pairs(s.env)],
    ["metadata", pairs(s.metadata)],
    ["created", `${time(s.createdAt)} (${createdVia[s.createdVia]})`],
    ["expires", time(s.expiresAt)],
    ["standby", policy(s)],
    ["forked", s.forkedFrom ?? "-"],
  ];
  return fields.map(([k, v]) => `${`${k}:`.padEnd(10)} ${v}`).join("\n") + "\n";
}
