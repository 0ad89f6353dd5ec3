import { z } from "zod";
import { ErrorBodySchema } from "./errors.js";
import { AbsolutePathSchema, UserSchema } from "./files.js";
import { EnvSchema } from "./sandboxes.js";


export const CommandRequestSchema = z
  .object({
    cmd: z
      .union([z.string().min(1).max(128 * 1024), z.array(z.string().max(128 * 1024)).min(1).max(4096)])
      .meta({ description: "A shell command line (run with /bin/sh -c) or an argv array." }),
    env: EnvSchema.default({}),
    cwd: AbsolutePathSchema.optional().meta({ description: "Default: the template's working directory (WORKDIR), else the user's home." }),
    user: UserSchema.optional().meta({ description: "Default: the template's user (USER), else root." }),
    stdin: z.boolean().default(false).meta({ description: "Keep stdin open for POST .../stdin; otherwise /dev/null." }),
    timeoutMs: z
      .number()
      .int()
      .min(0)
      .max(24 * 3600 * 1000)
      .optional()
      .meta({ description: "Kill the process after this long. Foreground default 60000; 0 = no limit." }),
    tag: z.string().max(256).optional(),
  })
  .strict()
  .meta({ id: "CommandRequest" });
export type CommandRequest = z.input<typeof CommandRequestSchema>;
export type CommandParams = z.output<typeof CommandRequestSchema>;

export const CommandResultSchema = z
  .object({
    pid: z.number().int(),
    exitCode: z.number().int(),
    signal: z.string().nullable(),
    stdout: z.string(),
    stderr: z.string(),
    truncated: z.boolean().meta({ description: "True when output beyond the buffered limit was dropped." }),
    timedOut: z.boolean(),
    durationMs: z.number(),
  })
  .meta({ id: "CommandResult" });
export type CommandResult = z.infer<typeof CommandResultSchema>;

/** One line of an NDJSON command or process stream. `exit` or `error` always ends the stream. */
export const CommandEventSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("start"), pid: z.number().int() }),
    z.object({ type: z.literal("stdout"), data: z.string() }),
    z.object({ type: z.literal("stderr"), data: z.string() }),
    z.object({
      type: z.literal("exit"),
      exitCode: z.number().int(),
      signal: z.string().nullable(),
      timedOut: z.boolean(),
      durationMs: z.number().nullable(),
    }),
    z.object({ type: z.literal("error"), error: ErrorBodySchema }),
  ])
  .meta({ id: "CommandEvent" });
export type CommandEvent = z.infer<typeof CommandEventSchema>;

export const ProcessSchema = z
  .object({
    pid: z.number().int(),
    cmd: z.array(z.string()),
    tag: z.string().nullable(),
    cwd: z.string().nullable(),
    user: z.string().nullable(),
    startedAt: z.iso.datetime(),
    running: z.boolean(),
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
  })
  .meta({ id: "Process" });
export type ProcessInfo = z.infer<typeof ProcessSchema>;

export const ProcessListSchema = z
  .object({
    processes: z.array(ProcessSchema),
    /** Set when the list (or a long command line in it) was cut to keep the agent's reply within its limit. */
    truncated: z.boolean().optional(),
  })
  .meta({ id: "ProcessList" });
export const StartedProcessSchema = z.object({ pid: z.number().int() }).meta({ id: "StartedProcess" });

export const StdinRequestSchema = z
  .object({
    data: z.string().max(1024 * 1024).default(""),
    eof: z.boolean().default(false).meta({ description: "Close stdin after writing data." }),
  })
  .strict();
export type StdinRequest = z.input<typeof StdinRequestSchema>;

export const signalNames = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGCONT", "SIGSTOP"] as const;
export const SignalRequestSchema = z.object({ signal: z.enum(signalNames).default("SIGTERM") }).strict();
export type SignalName = (typeof signalNames)[number];

export const AttachQuerySchema = z
  .object({ replay: z.enum(["true", "false"]).default("true").transform((v) => v === "true") })
  .strict();

export const PidParamSchema = z.object({ id: z.string(), pid: z.coerce.number().int().min(1).max(2 ** 31) });
