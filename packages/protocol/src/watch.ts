import { z } from "zod";
import { ErrorBodySchema } from "./errors.js";
import { AbsolutePathSchema } from "./files.js";

/** `GET /v1/sandboxes/{id}/files/watch`: a directory's changes as NDJSON, until the client leaves. */
export const WatchQuerySchema = z
  .object({
    path: AbsolutePathSchema,
    recursive: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  })
  .strict();

export const watchOps = ["create", "write", "remove", "rename", "chmod"] as const;
export type WatchOp = (typeof watchOps)[number];

/**
 * `start`: the watch is in place (changes from now on are seen). A change: `name` relative to the watched
 * directory, `path` absolute. `dropped`: that many changes were lost (the client or the sandbox's queue fell
 * behind). `end`: the watch ended (its directory was removed or moved); nothing follows. `error`: the
 * stream failed (the sandbox hibernated: sandbox_not_running; or died); nothing follows.
 */
export const WatchEventSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("start"), path: z.string() }),
    z.object({ type: z.enum(watchOps), name: z.string(), path: z.string() }),
    z.object({ type: z.literal("dropped"), count: z.number().int() }),
    z.object({ type: z.literal("end"), reason: z.string() }),
    z.object({ type: z.literal("error"), error: ErrorBodySchema }),
  ])
  .meta({ id: "WatchEvent" });
export type WatchEvent = z.infer<typeof WatchEventSchema>;
