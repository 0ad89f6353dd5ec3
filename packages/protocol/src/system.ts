import { z } from "zod";
import { RuntimeSchema } from "./sandboxes.js";

export const HealthSchema = z.object({ status: z.literal("ok"), version: z.string() }).meta({ id: "Health" });

export const DaemonInfoSchema = z
  .object({
    version: z.string(),
    defaultRuntime: RuntimeSchema,
    runtimes: z.array(z.object({ name: RuntimeSchema, available: z.boolean(), reason: z.string().nullable() })),
    templates: z.array(z.object({ name: z.string(), version: z.number().int(), builtAt: z.iso.datetime(), sizeBytes: z.number(), snapshot: z.boolean() })),
    sandboxes: z.object({ total: z.number().int(), running: z.number().int(), max: z.number().int() }),
    warmPools: z
      .array(z.object({ template: z.string(), size: z.number().int(), ready: z.number().int(), booting: z.number().int() }))
      .meta({ description: "Per template: frozen sandboxes kept booted for instant creates (STASIS_WARM_POOL, or the template's own pool size)." }),
  })
  .meta({ id: "DaemonInfo" });
export type DaemonInfo = z.infer<typeof DaemonInfoSchema>;

export const DoctorReportSchema = z
  .object({
    checks: z.array(
      z.object({
        name: z.string(),
        ok: z.boolean(),
        severity: z.enum(["error", "warning"]).meta({ description: "A failed warning does not stop the daemon from working." }),
        detail: z.string(),
        fix: z.string().optional(),
      }),
    ),
  })
  .meta({ id: "DoctorReport", description: "The host checks of `stasis doctor`, run by the daemon now." });
export type DoctorReport = z.infer<typeof DoctorReportSchema>;
