import { z } from "zod";
import { CreateSecretRequestSchema, SecretNameSchema } from "@stasis/protocol";
import type { Handler } from "../handler.js";
import { ApiError } from "../../errors/api-error.js";
import { jsonBody, parseWith } from "../validation.js";

const SecretParamSchema = z.object({ name: SecretNameSchema });

// Replies carry names, hosts and times only: the value goes into the store and never comes back out here.
export const secretHandlers = {
  setSecret: async (c, s) => c.json(s.secrets.put(await jsonBody(c, CreateSecretRequestSchema)).secret, 200),
  listSecrets: (c, s) => c.json({ secrets: s.secrets.list() }),
  getSecret: (c, s) => {
    const { name } = parseWith(SecretParamSchema, c.req.param(), "path");
    const secret = s.secrets.get(name);
    if (!secret) throw new ApiError("secret_not_found", `no secret '${name}'`);
    return c.json(secret);
  },
  deleteSecret: (c, s) => {
    const { name } = parseWith(SecretParamSchema, c.req.param(), "path");
    if (!s.secrets.delete(name)) throw new ApiError("secret_not_found", `no secret '${name}'`);
    return c.body(null, 204);
  },
} satisfies Record<string, Handler>;
