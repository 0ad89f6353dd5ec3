import { CreateSandboxRequestSchema, ForkRequestSchema, ListSandboxesQuerySchema, SetNetworkRequestSchema, SetTimeoutRequestSchema, StandbyPolicySchema } from "@stasis/protocol";
import { SAMPLE_INTERVAL_MS } from "../../e2b/metrics-history.js";
import type { Handler } from "../handler.js";
import { clientGone, jsonBody, query } from "../validation.js";

export const sandboxHandlers = {
  createSandbox: async (c, s) => c.json(await s.sandboxes.create(await jsonBody(c, CreateSandboxRequestSchema), { abandoned: clientGone(c) }), 201),
  listSandboxes: (c, s) => c.json(s.sandboxes.list(query(c, ListSandboxesQuerySchema))),
  getSandbox: (c, s) => c.json(s.sandboxes.get(c.req.param("id") ?? "")),
  deleteSandbox: async (c, s) => {
    await s.sandboxes.delete(c.req.param("id") ?? "");
    return c.body(null, 204);
  },
  pauseSandbox: async (c, s) => c.json(await s.sandboxes.pause(c.req.param("id") ?? "")),
  resumeSandbox: async (c, s) => c.json(await s.sandboxes.resume(c.req.param("id") ?? "")),
  hibernateSandbox: async (c, s) => c.json(await s.sandboxes.hibernate(c.req.param("id") ?? "")),
  forkSandbox: async (c, s) => {
    const body = await jsonBody(c, ForkRequestSchema);
    return c.json({ sandboxes: await s.sandboxes.fork(c.req.param("id") ?? "", body.count) }, 201);
  },
  setStandbyPolicy: async (c, s) => c.json(s.sandboxes.setStandbyPolicy(c.req.param("id") ?? "", await jsonBody(c, StandbyPolicySchema))),
  getSandboxMetrics: (c, s) => c.json(s.sandboxes.usage(c.req.param("id") ?? "")),
  getSandboxMetricsHistory: (c, s) => {
    const id = s.sandboxes.get(c.req.param("id") ?? "").id;
    const samples = s.metricsHistory.window(id).map((m) => ({
      at: new Date(m.at).toISOString(),
      cpuPct: m.cpuUsedPct,
      memoryBytes: m.memUsed,
      memoryLimitBytes: m.memTotal,
      networkSentBytes: m.netSent,
      networkReceivedBytes: m.netReceived,
    }));
    return c.json({ intervalMs: SAMPLE_INTERVAL_MS, samples });
  },
  setSandboxNetwork: async (c, s) => c.json(await s.sandboxes.setNetwork(c.req.param("id") ?? "", await jsonBody(c, SetNetworkRequestSchema))),
  setSandboxTimeout: async (c, s) => {
    const body = await jsonBody(c, SetTimeoutRequestSchema);
    return c.json(s.sandboxes.setTimeout(c.req.param("id") ?? "", body.timeoutMs));
  },
} satisfies Record<string, Handler>;
