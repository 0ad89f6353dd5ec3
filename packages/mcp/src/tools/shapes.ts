import { EgressTargetSchema, EnvSchema, RuntimeSchema, SandboxIdSchema, SandboxStateSchema, type Sandbox as SandboxInfo } from "@stasis/protocol";
import { z } from "zod";

// Tool schemas are built here from the protocol's leaf validators rather than its named schemas: a named
// schema (meta id) becomes a $ref in the JSON Schema, which some MCP clients do not follow.

export const sandboxId = SandboxIdSchema.describe("The sandbox's id (sbx_ + 16 characters), as create_sandbox or list_sandboxes return it.");

export const networkPolicy = z
  .object({
    internet: z.boolean().optional().describe("Reach the internet at all (default: the daemon's, normally on)."),
    allowOut: z.array(EgressTargetSchema).max(256).optional().describe("Only these targets (CIDR, IPv4, domain or *.domain) are reachable when non-empty."),
    denyOut: z.array(EgressTargetSchema).max(256).optional().describe("Targets refused (allowOut wins where both match)."),
  })
  .strict();

/** What the tools say about a sandbox: enough to decide what to do next, without its env. */
export const sandboxSummary = {
  id: z.string(),
  state: SandboxStateSchema,
  stateReason: z.string().nullable(),
  template: z.string(),
  runtime: RuntimeSchema,
  cpu: z.number(),
  memoryMiB: z.number(),
  diskMiB: z.number(),
  createdAt: z.string(),
  expiresAt: z.string().nullable().describe("End of its lifetime; null while in standby."),
  standbyReason: z.string().nullable().describe("Why it is paused or hibernated (requested, idle, lifetime); null when awake."),
  forkedFrom: z.string().nullable(),
  createdVia: z.string(),
  address: z.string().nullable().describe("Its IPv4 address on its private network; null without networking."),
};
export const sandboxSummarySchema = z.object(sandboxSummary);
export type SandboxSummary = z.output<typeof sandboxSummarySchema>;

export function summarize(info: SandboxInfo): SandboxSummary {
  return {
    id: info.id,
    state: info.state,
    stateReason: info.stateReason,
    template: info.template,
    runtime: info.runtime,
    cpu: info.cpu,
    memoryMiB: info.memoryMiB,
    diskMiB: info.diskMiB,
    createdAt: info.createdAt,
    expiresAt: info.expiresAt,
    standbyReason: info.standbyReason,
    forkedFrom: info.forkedFrom,
    createdVia: info.createdVia,
    address: info.network?.address ?? null,
  };
}

export { EnvSchema, RuntimeSchema, SandboxStateSchema };
