import { CreateE2bKeyRequestSchema, E2bKeyParamSchema } from "@stasis/protocol";
import type { Handler } from "../handler.js";
import { ApiError } from "../../errors/api-error.js";
import { jsonBody, parseWith } from "../validation.js";

export const e2bKeyHandlers = {
  createE2bKey: async (c, s) => c.json(s.e2bKeys.createKey((await jsonBody(c, CreateE2bKeyRequestSchema)).name), 201),
  listE2bKeys: (c, s) => c.json({ keys: s.e2bKeys.listKeys() }),
  deleteE2bKey: (c, s) => {
    const { keyId } = parseWith(E2bKeyParamSchema, c.req.param(), "path");
    if (!s.e2bKeys.deleteKey(keyId)) throw new ApiError("key_not_found", `no E2B key '${keyId}'`);
    return c.body(null, 204);
  },
} satisfies Record<string, Handler>;
