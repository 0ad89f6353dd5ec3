import { z } from "zod";

/**
 * API keys for the E2B-compatible surface. The unmodified `e2b` SDK sends one as `X-API-KEY`; older SDKs
 * insist on the `e2b_` + hex format, so Stasis issues keys in exactly that shape. Each key acts with the
 * authority of the daemon's own API key; only a hash is stored, so the key is shown once, at creation.
 */
export const E2bKeyIdSchema = z.string().regex(/^ek_[a-z0-9]{12}$/, "not an E2B key id");

export const E2bKeySchema = z
  .object({
    id: E2bKeyIdSchema,
    name: z.string(),
    /** The first characters of the key, to recognise it in a list. */
    prefix: z.string(),
    createdAt: z.iso.datetime(),
    lastUsedAt: z.iso.datetime().nullable(),
  })
  .meta({ id: "E2bKey" });
export type E2bKey = z.infer<typeof E2bKeySchema>;

export const CreatedE2bKeySchema = E2bKeySchema.extend({
  key: z.string().regex(/^e2b_[0-9a-f]{40}$/).meta({ description: "The key itself (`e2b_` + 40 hex); shown only in this reply." }),
}).meta({ id: "CreatedE2bKey" });
export type CreatedE2bKey = z.infer<typeof CreatedE2bKeySchema>;

export const CreateE2bKeyRequestSchema = z
  .object({ name: z.string().min(1).max(64).regex(/^[\x20-\x7e]+$/, "printable ASCII").default("default") })
  .strict()
  .meta({ id: "CreateE2bKeyRequest" });
export type CreateE2bKeyRequest = z.input<typeof CreateE2bKeyRequestSchema>;

export const E2bKeyListSchema = z.object({ keys: z.array(E2bKeySchema) }).meta({ id: "E2bKeyList" });
export type E2bKeyList = z.infer<typeof E2bKeyListSchema>;

export const E2bKeyParamSchema = z.object({ keyId: E2bKeyIdSchema });
