import { CreateDomainRequestSchema, SetPreviewRequestSchema, SignPreviewUrlRequestSchema } from "@stasis/protocol";
import type { Handler } from "../handler.js";
import { jsonBody } from "../validation.js";

export const previewHandlers = {
  listPorts: async (c, s) => c.json(await s.preview.ports(c.req.param("id") ?? "")),
  getPreview: (c, s) => c.json(s.preview.get(c.req.param("id") ?? "")),
  setPreview: async (c, s) => c.json(await s.preview.set(c.req.param("id") ?? "", await jsonBody(c, SetPreviewRequestSchema))),
  createDomain: async (c, s) => c.json(s.preview.createDomain(await jsonBody(c, CreateDomainRequestSchema)), 201),
  listDomains: (c, s) => c.json({ domains: s.preview.listDomains() }),
  deleteDomain: (c, s) => {
    s.preview.deleteDomain(c.req.param("host") ?? "");
    return c.body(null, 204);
  },
  signPreviewUrl: async (c, s) => {
    const body = await jsonBody(c, SignPreviewUrlRequestSchema);
    return c.json(s.preview.sign(c.req.param("id") ?? "", body.port, body.expiresInS));
  },
} satisfies Record<string, Handler>;
