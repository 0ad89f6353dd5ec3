import { z } from "zod";
import { CommandRequestSchema } from "./commands.js";
import { ErrorBodySchema } from "./errors.js";

/**
 * Interactive terminals. A terminal is a process started on a pseudo-terminal: it runs in the background
 * (it outlives its clients, a pause and a hibernation) and is used over a WebSocket:
 * `GET /v1/sandboxes/{id}/pty` (a new terminal, `cols`/`rows` in the query) or `?pid=N` (re-attach: recent
 * output is replayed first). Binary frames are the terminal's bytes both ways; text frames are the JSON
 * control messages below. Auth: the API key as `Authorization: Bearer`, or, where a client cannot set
 * headers (browsers), as the subprotocol `stasis.key.<key>` (offered beside `stasis.pty`, which the daemon
selects) or the query parameter `access_token`.
 */

const dim = z.coerce.number().int().min(1).max(4096);
export const PtySizeSchema = z.object({ cols: dim, rows: dim }).strict().meta({ id: "PtySize" });
export type PtySize = z.output<typeof PtySizeSchema>;

/** What a new terminal runs: by default the user's login shell (bash if present, else sh), interactive. */
export const CreatePtyRequestSchema = CommandRequestSchema.pick({ env: true, cwd: true, user: true, tag: true })
  .extend({
    cmd: CommandRequestSchema.shape.cmd.optional().meta({ description: "Default: an interactive login shell (bash, else sh)." }),
    cols: dim.default(80),
    rows: dim.default(24),
  })
  .strict()
  .meta({ id: "CreatePtyRequest" });
export type CreatePtyRequest = z.input<typeof CreatePtyRequestSchema>;
export type PtyParams = z.output<typeof CreatePtyRequestSchema>;

export const CreatedPtySchema = z.object({ pid: z.number().int() }).meta({ id: "CreatedPty" });

/** The WebSocket's query: `pid` re-attaches; otherwise a terminal of `cols` x `rows` running `cmd` starts. */
export const PtyConnectQuerySchema = z
  .object({
    pid: z.coerce.number().int().min(1).max(2 ** 31).optional(),
    replay: z.enum(["true", "false"]).default("true").transform((v) => v === "true").meta({ description: "With pid: send the terminal's recent output first." }),
    cols: dim.default(80),
    rows: dim.default(24),
    cmd: z.string().min(1).max(128 * 1024).optional().meta({ description: "A shell command line to run instead of the login shell." }),
    cwd: z.string().startsWith("/").max(4096).optional(),
    user: z.string().min(1).max(64).optional(),
    access_token: z.string().max(512).optional().meta({ description: "The API key, for clients that cannot send headers." }),
  })
  .strict();

/** Text frames from the daemon. `exit` is the last message; then the socket closes (1000). */
export const PtyServerMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("started"), pid: z.number().int(), replayed: z.boolean() }),
  z.object({ type: z.literal("exit"), exitCode: z.number().int(), signal: z.string().nullable() }),
  z.object({ type: z.literal("error"), error: ErrorBodySchema }),
]);
export type PtyServerMessage = z.infer<typeof PtyServerMessageSchema>;

/** Text frames from the client (binary frames are keystrokes). */
export const PtyClientMessageSchema = z.discriminatedUnion("type", [z.object({ type: z.literal("resize"), cols: dim, rows: dim })]);
export type PtyClientMessage = z.infer<typeof PtyClientMessageSchema>;

/** WebSocket close codes besides 1000 (exited) and 1011 (failed, after an `error` message). */
export const PTY_CLOSE_STANDBY = 4001; // the sandbox hibernated: reconnect (which wakes it) to go on
