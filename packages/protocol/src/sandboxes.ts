import { z } from "zod";
import { NetworkPolicySchema, SandboxNetworkSchema, SecretNameSchema } from "./network.js";

export const RuntimeSchema = z.enum(["gvisor", "crun"]).meta({
  description: "gvisor: user-space kernel, strongest isolation (default). crun: fast container tier.",
});
export type Runtime = z.infer<typeof RuntimeSchema>;

/**
 * Observed lifecycle states. Standby tiers: `paused` is frozen in RAM (no CPU, memory resident);
 * `hibernated` is checkpointed to disk (no CPU, no RAM). Any request that touches a sandbox in standby
 * wakes it first. `hibernating` and `resuming` are the transitions to and from disk. `stopped` and
 * `failed` are terminal; the record stays until deleted.
 */
export const SandboxStateSchema = z.enum(["creating", "running", "paused", "hibernating", "hibernated", "resuming", "stopping", "stopped", "failed"]);
export type SandboxState = z.infer<typeof SandboxStateSchema>;

const envKey = z.string().min(1).max(256).regex(/^[^=\0]+$/, "env names cannot contain '=' or NUL");
const envValue = z.string().max(32 * 1024).regex(/^[^\0]*$/, "env values cannot contain NUL");
export const EnvSchema = z
  .record(envKey, envValue)
  .refine((env) => Object.keys(env).length <= 256, "at most 256 variables");
export type Env = z.infer<typeof EnvSchema>;

export const MetadataSchema = z
  .record(z.string().min(1).max(128), z.string().max(1024))
  .refine((m) => Object.keys(m).length <= 64, "at most 64 metadata keys");
export type Metadata = z.infer<typeof MetadataSchema>;

export const SandboxIdSchema = z.string().regex(/^sbx_[a-z0-9]{16}$/, "not a sandbox id");

/**
 * Why a sandbox is in standby: `requested` (a pause or hibernate call), `idle` (automatic standby after
 * idleTimeoutMs without activity) or `lifetime` (its lifetime ended with onTimeout: standby).
 */
export const StandbyReasonSchema = z.enum(["requested", "idle", "lifetime"]);
export type StandbyReason = z.infer<typeof StandbyReasonSchema>;

/** How a sandbox came to be: booted for the request, taken from a warm pool, restored from its template's snapshot, or forked. */
export const CreatedViaSchema = z.enum(["cold", "warm_pool", "snapshot", "fork"]);
export type CreatedVia = z.infer<typeof CreatedViaSchema>;

export const MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000;

export const OnTimeoutSchema = z.enum(["standby", "kill"]).meta({
  description: "What happens when the lifetime passes: `standby` pauses the sandbox (and hibernates it later), `kill` stops it.",
});
export type OnTimeout = z.infer<typeof OnTimeoutSchema>;

/** A delay of automatic standby in ms; 0 turns that step off. */
const standbyDelay = (description: string) => z.number().int().min(0).max(MAX_TIMEOUT_MS).meta({ description });
const idleTimeoutMs = standbyDelay("Pause the sandbox after this long without activity (API calls, attached streams, running commands); 0 turns automatic pause off.");
const hibernateAfterMs = standbyDelay("Hibernate a sandbox (checkpoint to disk, freeing its memory) once it has been paused this long; 0 turns automatic hibernation off.");

/** Automatic standby, per sandbox. */
export const StandbyPolicySchema = z
  .object({ idleTimeoutMs: idleTimeoutMs.optional(), hibernateAfterMs: hibernateAfterMs.optional(), onTimeout: OnTimeoutSchema.optional() })
  .strict()
  .meta({ id: "StandbyPolicy" });
export type StandbyPolicy = z.infer<typeof StandbyPolicySchema>;

export const CreateSandboxRequestSchema = z
  .object({
    template: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,62}(:[1-9][0-9]{0,8})?$/, "a template name, optionally with :version")
      .default("base")
      .meta({ description: "`name` (latest version) or `name:version`." }),
    runtime: RuntimeSchema.optional().meta({ description: "Defaults to the daemon's default runtime (gvisor)." }),
    cpu: z.number().min(0.1).max(64).optional().meta({ description: "CPU cores (CFS quota). Default: the template's, else 1." }),
    memoryMiB: z.number().int().min(64).max(256 * 1024).optional().meta({ description: "Default: the template's, else 512." }),
    diskMiB: z
      .number()
      .int()
      .min(256)
      .max(1024 * 1024)
      .optional()
      .meta({ description: "Size of the sandbox's writable disk; sparse, so only written bytes use host disk. Default: the template's, else 4096." }),
    env: EnvSchema.default({}),
    metadata: MetadataSchema.default({}),
    timeoutMs: z
      .number()
      .int()
      .min(1000)
      .max(MAX_TIMEOUT_MS)
      .default(300_000)
      .meta({ description: "Lifetime of running time (standby does not count); what happens then is onTimeout. Extend with POST /timeout." }),
    onTimeout: OnTimeoutSchema.default("standby"),
    idleTimeoutMs: idleTimeoutMs.default(15_000),
    hibernateAfterMs: hibernateAfterMs.default(600_000),
    network: NetworkPolicySchema.optional().meta({ description: "What the sandbox may reach. Default: the daemon's (internet on unless configured off); change it later with PUT /network." }),
    secrets: z
      .array(SecretNameSchema)
      .max(64)
      .default([])
      .meta({ description: "Secrets (POST /v1/secrets) the sandbox may use: each becomes an environment variable holding a placeholder, which the egress proxy replaces with the value in requests to that secret's hosts only." }),
  })
  .strict()
  .meta({ id: "CreateSandboxRequest" });
export type CreateSandboxRequest = z.input<typeof CreateSandboxRequestSchema>;
export type CreateSandboxParams = z.output<typeof CreateSandboxRequestSchema>;

export const SandboxSchema = z
  .object({
    id: SandboxIdSchema,
    template: z.string().meta({ description: "The template and version it was made from: `name:version` (`base` for the built-in)." }),
    runtime: RuntimeSchema,
    state: SandboxStateSchema,
    stateReason: z.string().nullable().meta({ description: "Why the sandbox is stopped or failed." }),
    cpu: z.number(),
    memoryMiB: z.number().int(),
    diskMiB: z.number().int(),
    env: EnvSchema,
    metadata: MetadataSchema,
    timeoutMs: z.number().int(),
    onTimeout: OnTimeoutSchema,
    idleTimeoutMs: z.number().int(),
    hibernateAfterMs: z.number().int(),
    createdAt: z.iso.datetime(),
    expiresAt: z.iso.datetime().nullable().meta({ description: "End of the lifetime; null while in standby (the clock stands still)." }),
    standbySince: z.iso.datetime().nullable().meta({ description: "When the sandbox went into standby (paused or hibernated)." }),
    standbyReason: StandbyReasonSchema.nullable().meta({ description: "Why the sandbox is in standby; null when awake." }),
    forkedFrom: SandboxIdSchema.nullable().meta({ description: "The sandbox this one was forked from." }),
    network: SandboxNetworkSchema.optional().meta({ description: "Its address and what it may reach (absent from daemons before networking)." }),
    createdVia: CreatedViaSchema.meta({ description: "`cold`: booted for its create request; `warm_pool`: taken, already booted, from the template's warm pool; `snapshot`: restored from the template's snapshot (its start command already running); `fork`: a fork." }),
  })
  .meta({ id: "Sandbox" });
export type Sandbox = z.infer<typeof SandboxSchema>;

export const SandboxMetricsSchema = z
  .object({
    cpuCount: z.number(),
    cpuUsageUsec: z.number().nullable().meta({ description: "CPU time used by the current incarnation (it restarts at 0 after a wake from disk)." }),
    memoryBytes: z.number().nullable(),
    memoryLimitBytes: z.number(),
    diskUsedBytes: z.number().nullable(),
    diskTotalBytes: z.number(),
    networkSentBytes: z.number().nullable().meta({ description: "Bytes sent on its network over its life; null without a network." }),
    networkReceivedBytes: z.number().nullable().meta({ description: "Bytes received on its network over its life; null without a network." }),
  })
  .meta({ id: "SandboxMetrics", description: "What the sandbox uses now; a figure that cannot be read is null." });
export type SandboxMetrics = z.infer<typeof SandboxMetricsSchema>;

export const SandboxMetricsHistorySchema = z
  .object({
    intervalMs: z.number().int().meta({ description: "Time between two samples." }),
    samples: z.array(
      z.object({
        at: z.iso.datetime(),
        cpuPct: z.number().meta({ description: "CPU used since the previous sample, in percent of the sandbox's cores." }),
        memoryBytes: z.number(),
        memoryLimitBytes: z.number(),
        networkSentBytes: z.number().nullable().meta({ description: "Bytes sent over its life at this sample; null without a network." }),
        networkReceivedBytes: z.number().nullable(),
      }),
    ),
  })
  .meta({ id: "SandboxMetricsHistory", description: "Samples of the last hour while the sandbox ran, oldest first, kept in the daemon's memory (a restart starts anew)." });
export type SandboxMetricsHistory = z.infer<typeof SandboxMetricsHistorySchema>;

export const SetNetworkRequestSchema = NetworkPolicySchema.meta({
  id: "SetNetworkRequest",
  description: "The sandbox's new policy; fields left out keep their value. New connections follow it at once; open ones are not cut.",
});

export const ListSandboxesQuerySchema = z
  .object({
    state: SandboxStateSchema.optional(),
    metadata: z
      .string()
      .optional()
      .meta({ description: "Filter as `key=value` pairs joined by `&`, URL-encoded: metadata=team%3Dml%26env%3Ddev" }),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().max(256).optional(),
  })
  .strict();
export type ListSandboxesQuery = z.input<typeof ListSandboxesQuerySchema>;

export const SandboxListSchema = z
  .object({ sandboxes: z.array(SandboxSchema), nextCursor: z.string().nullable() })
  .meta({ id: "SandboxList" });
export type SandboxList = z.infer<typeof SandboxListSchema>;

export const SetTimeoutRequestSchema = z
  .object({ timeoutMs: z.number().int().min(1000).max(MAX_TIMEOUT_MS) })
  .strict()
  .meta({ description: "The sandbox now expires timeoutMs from this request." });

export const ForkRequestSchema = z
  .object({ count: z.number().int().min(1).max(16).default(1) })
  .strict()
  .meta({ id: "ForkRequest", description: "How many independent copies of the sandbox's memory, processes and files to make." });
export type ForkRequest = z.input<typeof ForkRequestSchema>;

export const ForkResultSchema = z.object({ sandboxes: z.array(SandboxSchema) }).meta({ id: "ForkResult" });
export type ForkResult = z.infer<typeof ForkResultSchema>;
