import { createWriteStream, openAsBlob } from "node:fs";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeWebStream } from "node:stream/web";
import { Sandbox, type WriteData } from "@stasis/sdk";
import type { CommandOf } from "../command.js";
import { bytes, note, printJson, table, time, write, type Context } from "../output.js";

export async function put(cmd: CommandOf<"files.put">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  // A file goes up as a Blob (sized, streamed from disk); stdin as a stream.
  const data: WriteData = cmd.local === "-" ? (Readable.toWeb(Readable.from(ctx.io.stdin)) as unknown as ReadableStream<Uint8Array>) : await openAsBlob(cmd.local);
  const info = await sandbox.files.write(cmd.remote, data, cmd.mode ? { mode: cmd.mode } : {});
  if (ctx.json) await printJson(ctx, info);
  else note(ctx, `wrote ${bytes(info.size)} to ${info.path}`);
  return 0;
}

export async function get(cmd: CommandOf<"files.get">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const body = Readable.fromWeb((await sandbox.files.readStream(cmd.remote)) as NodeWebStream<Uint8Array>);
  if (cmd.local === "-") {
    // Not pipeline() into process.stdout: that would end (close) stdout for whatever runs next.
    const stdout = new Writable({ write: (chunk: Uint8Array, _enc, done) => void write(ctx.io.stdout, chunk).then(() => done(), done) });
    await pipeline(body, stdout);
  } else {
    await pipeline(body, createWriteStream(cmd.local));
  }
  return 0;
}

export async function ls(cmd: CommandOf<"files.ls">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const listing = await sandbox.files.list(cmd.path, { depth: cmd.depth });
  if (ctx.json) {
    await printJson(ctx, listing);
    return 0;
  }
  const rows = listing.entries.map((e) => [
    e.type,
    (e.mode & 0o7777).toString(8).padStart(4, "0"),
    e.type === "dir" ? "-" : bytes(e.size),
    time(e.mtime),
    e.symlinkTarget ? `${e.path} -> ${e.symlinkTarget}` : e.path,
  ]);
  await write(ctx.io.stdout, table(["TYPE", "MODE", "SIZE", "MODIFIED", "PATH"], rows));
  if (listing.truncated) note(ctx, "(listing truncated by the daemon)");
  return 0;
}

export async function rm(cmd: CommandOf<"files.rm">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  await sandbox.files.remove(cmd.path, { recursive: cmd.recursive });
  return 0;
}

export async function mkdir(cmd: CommandOf<"files.mkdir">, ctx: Context): Promise<number> {
  const sandbox = await Sandbox.connect(cmd.id, ctx.conn);
  const created = await sandbox.files.mkdir(cmd.path);
  if (ctx.json) await printJson(ctx, { created });
  else if (!created) note(ctx, `${cmd.path} already exists`);
  return 0;
}
