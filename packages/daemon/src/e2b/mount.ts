import type { Context, Hono } from "hono";
import type { Logger } from "pino";
import { ApiError } from "../errors/api-error.js";
import type { Metrics } from "../observability/metrics.js";
import { ControlPlane, E2bHttpError, type ControlPlaneDeps } from "./control-plane.js";
import { Envd, type EnvdDeps } from "./envd.js";
import { nameRequestSpan } from "../observability/http-tracing.js";

export type E2bDeps = ControlPlaneDeps & EnvdDeps & { log: Logger; metrics: Metrics };

type Handler = (c: Context) => Promise<Response>;

/** Parts of E2B's API that Stasis does not offer: answered with a clear error rather than a 404. */
const UNSUPPORTED_PREFIXES = ["/templates", "/v2/templates", "/v3/templates", "/volumes", "/volumecontent", "/secrets", "/snapshots", "/teams", "/access-tokens", "/api-keys", "/nodes"];

/**
 * Mounts the E2B-compatible surface on the daemon's app, on the same port as Stasis's own API:
 * requests carrying E2b-Sandbox-Id (or a signed /files URL) go to envd; E2B's control-plane paths (/sandboxes, /v2/sandboxes)
 * go to the control plane. Neither overlaps Stasis's own routes (/v1/..., /healthz, /metrics).
 */
export function mountE2b(app: Hono<{ Variables: { requestId: string } }>, deps: E2bDeps): void {
  const controlPlane = new ControlPlane(deps);
  const envd = new Envd(deps);

  const observe = (route: string, method: string, status: number, started: number) => {
    const seconds = (performance.now() - started) / 1000;
    deps.metrics.httpRequests.inc({ route, method: method.toLowerCase(), status: String(status) });
    deps.metrics.httpDuration.observe({ route, method: method.toLowerCase() }, seconds);
  };

  app.use("*", async function e2bSandboxTraffic(c, next) {
    const sandboxId = c.req.header("e2b-sandbox-id");
    const signed = sandboxId === undefined && c.req.path === "/files" && c.req.query("signature") !== undefined;
    if (sandboxId === undefined && !signed) return next();
    const started = performance.now();
    let status = 500;
    try {
      const response = sandboxId === undefined ? await envd.handleSigned(c) : await envd.handle(c, sandboxId, c.req.header("e2b-sandbox-port") ?? "");
      status = response.status;
      return response;
    } catch (err) {
      deps.log.error({ err, requestId: c.get("requestId"), path: c.req.path }, "e2b envd request failed");
      return c.json({ code: 500, message: "internal error; see the daemon log" }, 500);
    } finally {
      observe("e2b.envd", c.req.method, status, started);
    }
  });

  const route = (method: string, path: string, name: string, handler: Handler) => {
    const on = method === "ALL" ? app.all.bind(app) : (p: string, h: Handler) => app.on(method, p, h);
    on(path, async function e2bRoute(c: Context) {
      const started = performance.now();
      nameRequestSpan(method === "ALL" ? c.req.method : method, path, `e2b.${name}`);
      let status = 500;
      try {
        if (!deps.auth.apiKeyValid(c.req.header("x-api-key"))) throw new E2bHttpError(401, "Invalid API key: create one with `stasis e2b key create`");
        const response = await handler(c);
        status = response.status;
        return response;
      } catch (err) {
        const e = toE2bError(err);
        status = e.status;
        if (e.status >= 500) deps.log.error({ err, requestId: c.get("requestId"), route: name }, "e2b request failed");
        return c.json({ code: e.status, message: e.message }, e.status as 400);
      } finally {
        observe(`e2b.${name}`, method, status, started);
      }
    });
  };

  route("POST", "/sandboxes", "create", (c) => controlPlane.create(c));
  route("POST", "/v2/sandboxes", "create", (c) => controlPlane.create(c));
  route("GET", "/sandboxes", "list", (c) => controlPlane.listV1(c));
  route("GET", "/v2/sandboxes", "list", (c) => controlPlane.listV2(c));
  route("GET", "/sandboxes/:id", "get", (c) => controlPlane.get(c));
  route("DELETE", "/sandboxes/:id", "kill", (c) => controlPlane.kill(c));
  route("POST", "/sandboxes/:id/connect", "connect", (c) => controlPlane.connect(c));
  route("POST", "/v2/sandboxes/:id/connect", "connect", (c) => controlPlane.connect(c));
  route("POST", "/sandboxes/:id/resume", "resume", (c) => controlPlane.resume(c));
  route("POST", "/sandboxes/:id/pause", "pause", (c) => controlPlane.pause(c));
  route("POST", "/sandboxes/:id/timeout", "timeout", (c) => controlPlane.setTimeout(c));
  route("POST", "/sandboxes/:id/refreshes", "refresh", (c) => controlPlane.refresh(c));
  route("GET", "/sandboxes/:id/metrics", "metrics", (c) => controlPlane.metrics(c));
  route("POST", "/sandboxes/:id/fork", "fork", (c) => controlPlane.fork(c));
  route("PUT", "/sandboxes/:id/network", "network", (c) => controlPlane.updateNetwork(c));
  const notOffered: Handler = (c) => {
    throw new E2bHttpError(501, `${c.req.method} ${c.req.path} of E2B's API is not supported by Stasis yet (see "Coming from E2B" in the README)`);
  };
  for (const prefix of UNSUPPORTED_PREFIXES) {
    route("ALL", prefix, "unsupported", notOffered);
    route("ALL", `${prefix}/*`, "unsupported", notOffered);
  }
  route("ALL", "/sandboxes/:id/*", "unsupported", notOffered);
}

function toE2bError(err: unknown): E2bHttpError {
  if (err instanceof E2bHttpError) return err;
  if (err instanceof ApiError) {
    const status = err.code === "sandbox_not_found" ? 404 : err.status;
    return new E2bHttpError(status, err.message);
  }
  return new E2bHttpError(500, "internal error; see the daemon log");
}
