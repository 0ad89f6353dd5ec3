import { BuildTemplateQuerySchema, ImportTemplateQuerySchema, TemplateRefSchema, UpdateTemplateRequestSchema } from "@stasis/protocol";
import type { Handler } from "../handler.js";
import { requestBody } from "../request-body.js";
import { ndjsonResponse } from "../ndjson.js";
import { clientGone, jsonBody, parseWith, query } from "../validation.js";

const ref = (param: string | undefined) => parseWith(TemplateRefSchema, param ?? "", "path");

export const templateHandlers = {
  listTemplates: (c, s) => c.json({ templates: s.templateBuilds.list() }),
  getTemplate: (c, s) => c.json(s.templateBuilds.get(ref(c.req.param("ref")))),
  updateTemplate: async (c, s) => c.json(s.templateBuilds.update(ref(c.req.param("ref")), await jsonBody(c, UpdateTemplateRequestSchema))),
  deleteTemplate: async (c, s) => {
    await s.templateBuilds.delete(ref(c.req.param("ref")));
    return c.body(null, 204);
  },
  // The body is a tar stream, read as it arrives; the build's events stream back.
  buildTemplate: (c, s) => {
    const q = query(c, BuildTemplateQuerySchema);
    const body = requestBody(c);
    return ndjsonResponse(s.templateBuilds.build(q, body, clientGone(c)), c.get("requestId"));
  },
  importTemplate: (c, s) => {
    const q = query(c, ImportTemplateQuerySchema);
    const body = requestBody(c);
    return ndjsonResponse(s.templateBuilds.import(q, body, clientGone(c)), c.get("requestId"));
  },
} satisfies Record<string, Handler>;
