import { z } from "zod";

/**
 * The daemon <-> agent protocol (docs/agent-protocol.md) in one place: a schema per op's request and
 * reply, and per event. Replies and events come from the sandbox, so they are parsed with these
 * schemas, never cast. Objects are not strict: an agent may add fields (forward compatibility).
 */

/** Protocol versions this daemon speaks. 1: JSON lines only; 2: JSON lines plus binary frames; 3: terminals and file watches. */
export const MIN_PROTOCOL = 1;
export const MAX_PROTOCOL = 3;
/** The first protocol with terminals (exec `pty`, `resize`) and file watches (`watch`, `unwatch`, `fs` events). */
export const PTY_WATCH_PROTOCOL = 3;
/** The first protocol with binary frames (and `protocol` in the ping reply). */
export const FRAMES_PROTOCOL = 2;

const int = z.number().int();
const uint = int.nonnegative();
const pid = int.positive();
const env = z.record(z.string(), z.string());

// ---- events (no id) ----

export const HelloEventSchema = z.object({ ev: z.literal("hello"), version: z.string().max(200), protocol: int });
export const OutEventSchema = z.object({ ev: z.literal("out"), pid, fd: z.union([z.literal(1), z.literal(2)]), data: z.string().optional() });
export const ExitEventSchema = z.object({ ev: z.literal("exit"), pid, code: int, signal: z.string().max(64).nullable() });
export const FsChangeSchema = z.object({ name: z.string().max(65536), op: z.enum(["create", "write", "remove", "rename", "chmod"]) });
/** A batch of a watch's changes; `dropped`: how many were lost before it; `end`: the watch ended (why). */
export const FsEventSchema = z.object({
  ev: z.literal("fs"),
  wid: int.positive(),
  events: z.array(FsChangeSchema).max(1024).optional(),
  dropped: uint.optional(),
  end: z.string().max(4096).optional(),
});
export const AgentEventSchema = z.discriminatedUnion("ev", [HelloEventSchema, OutEventSchema, ExitEventSchema, FsEventSchema]);

// ---- replies ----

export const AgentErrorSchema = z.object({ code: z.string().max(64), message: z.string() });
export const ReplySchema = z.union([
  z.object({ id: int, ok: z.literal(true), result: z.unknown().optional() }),
  z.object({ id: int, ok: z.literal(false), error: AgentErrorSchema }),
]);

// ---- ops: request (without id and op) and reply result ----

export const ExecRequestSchema = z.object({
  cmd: z.array(z.string()).min(1),
  env: env.optional(),
  cwd: z.string().optional(),
  user: z.union([z.string(), int]).optional(),
  stdin: z.boolean().optional(),
  tag: z.string().optional(),
  subscribe: z.boolean().optional(),
  window: uint.optional(),
  /** Start on a new terminal of this size (protocol 3): output comes on fd 1, stdin writes are keystrokes. */
  pty: z.object({ cols: int, rows: int }).optional(),
});
export const ExecResultSchema = z.object({ pid });

export const PsEntrySchema = z.object({
  pid,
  cmd: z.array(z.string()),
  tag: z.string().nullish(),
  cwd: z.string().nullish(),
  user: z.string().nullish(),
  startedAtMs: z.number(),
  running: z.boolean(),
  exitCode: int.nullable(),
  signal: z.string().nullable(),
  /** Started on a terminal (protocol 3). */
  pty: z.boolean().optional(),
});
/** `truncated`: the agent cut the list or a command line to keep the reply within a line (absent from older agents). */
export const PsResultSchema = z.object({ processes: z.array(PsEntrySchema), truncated: z.boolean().optional() });

export const SignalRequestSchema = z.object({ pid, signal: z.union([z.string(), int]) });
export const AttachRequestSchema = z.object({ pid, window: uint.optional(), replay: z.boolean().optional() });
export const AttachResultSchema = z.object({ pid, running: z.boolean() });
export const PidRequestSchema = z.object({ pid });
export const AckRequestSchema = z.object({ pid, bytes: uint });
export const PrewarmRequestSchema = z.object({ env: env.optional(), user: z.union([z.string(), int]).optional() });

export const StatSchema = z.object({
  name: z.string(),
  path: z.string(),
  type: z.enum(["file", "dir", "symlink", "other"]),
  size: uint,
  mode: uint,
  mtimeMs: z.number(),
  uid: uint,
  gid: uint,
  symlinkTarget: z.string().nullish(),
  /** Where a symlink leads once every link is followed (absent when it leads nowhere, or from older agents). */
  resolved: z.object({ path: z.string(), type: z.enum(["file", "dir", "symlink", "other"]), mode: uint }).nullish(),
});
export const ListResultSchema = z.object({ entries: z.array(StatSchema), truncated: z.boolean() });
export const MkdirResultSchema = z.object({ created: z.boolean() });
/** `data`: base64 from a line; absent when a frame's payload carries it. */
export const ReadResultSchema = z.object({ data: z.string().nullish(), eof: z.boolean(), size: uint });
export const WriteOpenResultSchema = z.object({ handle: z.string().min(1).max(256) });
export const PingResultSchema = z.object({ version: z.string().max(200), uptimeMs: z.number(), protocol: int.optional() });
export const StatsResultSchema = z.object({ rssKiB: uint, goroutines: uint, processes: uint });
export const EmptyResultSchema = z.object({});
export const WatchResultSchema = z.object({ wid: int.positive() });

export type HelloEvent = z.infer<typeof HelloEventSchema>;
export type FsEvent = z.infer<typeof FsEventSchema>;
export type FsChange = z.infer<typeof FsChangeSchema>;
export type ExecRequest = z.infer<typeof ExecRequestSchema>;
export type ExecResult = z.infer<typeof ExecResultSchema>;
export type PsEntry = z.infer<typeof PsEntrySchema>;
export type PsResult = z.infer<typeof PsResultSchema>;
export type SignalRequest = z.infer<typeof SignalRequestSchema>;
export type AttachRequest = z.infer<typeof AttachRequestSchema>;
export type AttachResult = z.infer<typeof AttachResultSchema>;
export type PrewarmRequest = z.infer<typeof PrewarmRequestSchema>;
export type AgentStat = z.infer<typeof StatSchema>;
export type ListResult = z.infer<typeof ListResultSchema>;
export type MkdirResult = z.infer<typeof MkdirResultSchema>;
export type PingResult = z.infer<typeof PingResultSchema>;
export type StatsResult = z.infer<typeof StatsResultSchema>;
export type EmptyResult = z.infer<typeof EmptyResultSchema>;
/** A `read` reply with its bytes, whichever way they travelled. */
export type ReadResult = { data: Buffer; eof: boolean; size: number };

export type MkdirRequest = { path: string; parents?: boolean; mode?: number; user?: string };
export type WriteOpenRequest = { path: string; mode?: number; user?: string; parents?: boolean };
export type ReadRequest = { path: string; offset: number; length: number };

/** The result schema of every op that has a reply. */
export const resultSchemas = {
  exec: ExecResultSchema,
  ps: PsResultSchema,
  signal: EmptyResultSchema,
  attach: AttachResultSchema,
  detach: EmptyResultSchema,
  stdin: EmptyResultSchema,
  prewarm: EmptyResultSchema,
  stat: StatSchema,
  list: ListResultSchema,
  mkdir: MkdirResultSchema,
  move: EmptyResultSchema,
  remove: EmptyResultSchema,
  read: ReadResultSchema,
  write_open: WriteOpenResultSchema,
  write_chunk: EmptyResultSchema,
  write_close: StatSchema,
  write_abort: EmptyResultSchema,
  ping: PingResultSchema,
  resize: EmptyResultSchema,
  watch: WatchResultSchema,
  unwatch: EmptyResultSchema,
  stats: StatsResultSchema,
} as const;
export type AgentOp = keyof typeof resultSchemas;
export type ResultOf<K extends AgentOp> = z.infer<(typeof resultSchemas)[K]>;

// ---- framing (protocol 2) ----

/** A JSON line's limit, in both directions (an over-long line is dropped). */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;
/** Decoded bytes one base64 `data` field may carry (protocol 1). */
export const MAX_LINE_DATA = 1024 * 1024;
/** Frame: marker byte, header length (u32 BE), payload length (u32 BE), JSON header, payload. */
export const FRAME_MARKER = 0x00;
export const FRAME_PREFIX_BYTES = 9;
export const MAX_FRAME_HEADER = 64 * 1024;
export const MAX_FRAME_PAYLOAD = 4 * 1024 * 1024;
/** The largest payload the daemon itself sends: the resync padding is sized by it. */
export const MAX_SENT_PAYLOAD = 1024 * 1024;

/** A short description of why a value failed its schema, for an error message. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
}
