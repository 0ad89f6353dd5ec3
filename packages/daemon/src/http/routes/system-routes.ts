import { buildOpenApi, type DaemonInfo } from "@stasis/protocol";
import type { Handler } from "../handler.js";

// Built from the route table on first request, then served as is: the table does not change at run time.
let openapiDocument: ReturnType<typeof buildOpenApi> | undefined;

export const systemHandlers = {
  health: (c, s) => c.json({ status: "ok" as const, version: s.version }),
  metrics: async (c, s) => {
    s.sandboxes.updateGauges();
    return c.text(await s.metrics.registry.metrics(), 200, { "content-type": s.metrics.registry.contentType });
  },
  openapi: (c) => c.json((openapiDocument ??= buildOpenApi())),
  doctor: async (c, s) => c.json({ checks: await s.doctor() }),
  info: (c, s) => {
    const info: DaemonInfo = {
      version: s.version,
      defaultRuntime: s.defaultRuntime,
      runtimes: s.sandboxes.runtimes(),
      templates: s.templates.list().filter((t) => t.latest).map((t) => ({ name: t.name, version: t.version, builtAt: t.builtAt, sizeBytes: t.sizeBytes, snapshot: t.snapshot !== null })),
      sandboxes: s.sandboxes.info(),
      warmPools: s.sandboxes.warmPools(),
    };
    return c.json(info);
  },
} satisfies Record<string, Handler>;
