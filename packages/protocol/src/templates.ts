import { z } from "zod";
import { NetworkPolicySchema } from "./network.js";
import { ErrorCodeSchema } from "./errors.js";
import { EnvSchema } from "./sandboxes.js";

/** A template's name: what `template` in a create request names (the latest version). */
export const TemplateNameSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit");

/** `name` (its latest version) or `name:version` (that version). */
export const TemplateRefSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}(:[1-9][0-9]{0,8})?$/, "a template name, optionally with :version")
  .meta({ description: "`name` for the latest version, or `name:version`." });

/** Limits a create may ask for; a template's own defaults must lie within them too. */
export const CpuSchema = z.number().min(0.1).max(64).meta({ description: "CPU cores (CFS quota)." });
export const MemoryMiBSchema = z.number().int().min(64).max(256 * 1024);
export const DiskMiBSchema = z
  .number()
  .int()
  .min(256)
  .max(1024 * 1024)
  .meta({ description: "Size of the sandbox's writable disk; sparse, so only written bytes use host disk." });

export const TemplateResourcesSchema = z
  .object({ cpu: CpuSchema, memoryMiB: MemoryMiBSchema, diskMiB: DiskMiBSchema })
  .meta({ id: "TemplateResources", description: "Defaults for sandboxes of this template; a create may override each." });
export type TemplateResources = z.infer<typeof TemplateResourcesSchema>;

export const TemplateSourceSchema = z.enum(["builtin", "spec", "dockerfile", "oci"]);

export const TemplateSchema = z
  .object({
    name: TemplateNameSchema,
    version: z.number().int().min(1),
    ref: z.string().meta({ description: "`name:version`: what sandboxes made from this version record as their template." }),
    latest: z.boolean().meta({ description: "Whether `name` alone resolves to this version." }),
    source: TemplateSourceSchema,
    from: z.string().nullable().meta({ description: "What the build started from: `debian:<suite>`, another template's ref, or `oci`." }),
    builtAt: z.iso.datetime(),
    buildMs: z.number().int().nullable(),
    layers: z.number().int().meta({ description: "Filesystem layers under a sandbox of this template." }),
    sizeBytes: z.number().meta({ description: "Bytes of the layers this version added on top of its base." }),
    env: EnvSchema,
    workdir: z.string().nullable(),
    user: z.string().nullable(),
    start: z.string().nullable().meta({ description: "Start command, run in every sandbox of the template (and captured by its snapshot)." }),
    ready: z.string().nullable().meta({ description: "Readiness check: a shell command that exits 0 once the start command is ready." }),
    resources: TemplateResourcesSchema,
    pool: z.number().int().min(0).meta({ description: "Warm-pool size kept for this template." }),
    network: NetworkPolicySchema.nullable().optional().meta({ description: "What its sandboxes may reach unless their create says otherwise; null: the daemon's default." }),
    snapshot: z
      .object({ takenAt: z.iso.datetime(), memoryBytes: z.number(), diskBytes: z.number() })
      .nullable()
      .meta({ description: "The checkpoint of a booted sandbox with the start command running and ready; creates restore it." }),
  })
  .meta({ id: "Template" });
export type Template = z.infer<typeof TemplateSchema>;

export const TemplateListSchema = z.object({ templates: z.array(TemplateSchema) }).meta({ id: "TemplateList" });
export type TemplateList = z.infer<typeof TemplateListSchema>;

const boolQuery = z
  .enum(["true", "false", "1", "0"])
  .transform((v) => v === "true" || v === "1")
  .optional();

/** Query of a build. The body is a tar archive of the build context, holding the spec or Dockerfile. */
export const BuildTemplateQuerySchema = z
  .object({
    name: TemplateNameSchema,
    file: z
      .string()
      .max(1024)
      .optional()
      .meta({ description: "The spec (`*.yaml`, `*.yml`, `*.json`) or Dockerfile inside the context; default: stasis.yaml, stasis.yml, stasis.json or Dockerfile, first found." }),
    noCache: boolQuery.meta({ description: "Rebuild every step instead of reusing cached layers." }),
    snapshot: boolQuery.meta({ description: "Override the spec: take (true) or skip (false) the snapshot of a template with a start command." }),
    cpu: z.coerce.number().pipe(CpuSchema).optional(),
    memoryMiB: z.coerce.number().pipe(MemoryMiBSchema).optional(),
    diskMiB: z.coerce.number().pipe(DiskMiBSchema).optional(),
    pool: z.coerce.number().int().min(0).max(64).optional().meta({ description: "Warm-pool size; overrides the spec." }),
  })
  .strict();
export type BuildTemplateQuery = z.input<typeof BuildTemplateQuerySchema>;

/** Query of an OCI import. The body is a `docker save` tarball or a tar of an OCI image layout. */
export const ImportTemplateQuerySchema = z
  .object({
    name: TemplateNameSchema,
    image: z.string().max(256).optional().meta({ description: "Which image in the archive (tag or `name:tag`); default: the only one." }),
    cpu: z.coerce.number().pipe(CpuSchema).optional(),
    memoryMiB: z.coerce.number().pipe(MemoryMiBSchema).optional(),
    diskMiB: z.coerce.number().pipe(DiskMiBSchema).optional(),
    pool: z.coerce.number().int().min(0).max(64).optional(),
  })
  .strict();
export type ImportTemplateQuery = z.input<typeof ImportTemplateQuerySchema>;

export const UpdateTemplateRequestSchema = z
  .object({
    pool: z.number().int().min(0).max(64).optional(),
    resources: TemplateResourcesSchema.partial().optional(),
    network: NetworkPolicySchema.nullable().optional().meta({ description: "Default network policy of its sandboxes (null: back to the daemon's)." }),
  })
  .strict()
  .meta({ id: "UpdateTemplateRequest", description: "Changes a version's warm-pool size, default resources or default network policy." });
export type UpdateTemplateRequest = z.infer<typeof UpdateTemplateRequestSchema>;

export const DeleteTemplateQuerySchema = z.object({}).strict();

/**
 * A build streams these, one JSON line each. `step` opens each step (cached or not), `log` carries the
 * step's output a line at a time, `progress` tells what a long phase is doing; the stream ends with
 * `done` or `error` (a failed step names itself, and its source line where there is one).
 */
export const TemplateBuildEventSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("step"), step: z.number().int(), total: z.number().int(), instruction: z.string(), cached: z.boolean() }),
    z.object({ type: z.literal("log"), step: z.number().int().nullable(), data: z.string() }),
    z.object({ type: z.literal("progress"), message: z.string() }),
    z.object({ type: z.literal("done"), template: TemplateSchema, durationMs: z.number().int(), cachedSteps: z.number().int(), builtSteps: z.number().int() }),
    z.object({
      type: z.literal("error"),
      code: ErrorCodeSchema,
      message: z.string(),
      step: z.number().int().nullable(),
      instruction: z.string().nullable(),
      line: z.number().int().nullable().meta({ description: "Line of the failing instruction in the spec or Dockerfile." }),
    }),
  ])
  .meta({ id: "TemplateBuildEvent" });
export type TemplateBuildEvent = z.infer<typeof TemplateBuildEventSchema>;
