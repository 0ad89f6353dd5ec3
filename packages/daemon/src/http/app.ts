import { randomUUID, timingSafeEqual } from "node:crypto";
import { Hono, type Context } from "hono";
import type { Logger } from "pino";
import { routes, type RouteId, type RouteSpec } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import type { MetricsAuth } from "../config/config.js";
import type { Metrics } from "../observability/metrics.js";
import { nameRequestSpan } from "../observability/http-tracing.js";
import { sendError, toApiError } from "./http-errors.js";
import { ClientGoneError, DEFAULT_BODY_IDLE_MS, incomingOf, setBodyIdle } from "./request-body.js";
import type { E2bAuth } from "../e2b/e2b-auth.js";
import type { E2bMetricsHistory } from "../e2b/metrics-history.js";
import { mountE2b } from "../e2b/mount.js";
import { mountConsole } from "./console-assets.js";
import { commandHandlers } from "./routes/command-routes.js";
import { e2bKeyHandlers } from "./routes/e2b-key-routes.js";
import { fileHandlers } from "./routes/file-routes.js";
import { sandboxHandlers } from "./routes/sandbox-routes.js";
import { previewHandlers } from "./routes/preview-routes.js";
import { codeHandlers } from "./routes/code-routes.js";
import { ptyHandlers } from "./routes/pty-routes.js";
import { secretHandlers } from "./routes/secret-routes.js";
import { systemHandlers } from "./routes/system-routes.js";
import { templateHandlers } from "./routes/template-routes.js";
import type { AppEnv, Handlers } from "./handler.js";
import type { Services } from "./services.js";

export interface AppOptions {
  apiKey: string;
  /** How long a request body may stall before the request is refused (default 30 s). */
  bodyIdleMs?: number;
  /** Who may read /metrics without the key (default loopback: clients on the host). */
  metricsAuth?: MetricsAuth;
  log: Logger;
  metrics: Metrics;
  services: Services;
  /** The E2B-compatible surface; left out, only Stasis's own API is served. `metricsHistory`: started by its owner. */
  e2b?: { auth: E2bAuth; metricsHistory?: E2bMetricsHistory };
  /** The built web console's folder (default: the package's console/); false: no console. */
  consoleDir?: string | false;
}

/** Builds the HTTP app from the protocol's route table: every route is mounted once, from one place. */
export function createApp(options: AppOptions): Hono<AppEnv> {
  const { apiKey, log, metrics, services } = options;
  const handlers: Handlers = { ...systemHandlers, ...sandboxHandlers, ...commandHandlers, ...fileHandlers, ...templateHandlers, ...e2bKeyHandlers, ...secretHandlers, ...previewHandlers, ...codeHandlers, ...ptyHandlers };
  const expected = Buffer.from(`Bearer ${apiKey}`);
  const app = new Hono<AppEnv>();

  app.use("*", async function requestContext(c, next) {
    const requestId = c.req.header("x-request-id")?.slice(0, 128) || randomUUID();
    c.set("requestId", requestId);
    setBodyIdle(c, options.bodyIdleMs ?? DEFAULT_BODY_IDLE_MS);
    c.header("x-request-id", requestId);
    await next();
    // A reply sent before the request's body was all read (a failed or refused upload): the rest of the
    // body is still on the connection, so it cannot carry another request. Say so, and Node closes it
    // once the reply is written, instead of a keep-alive reply on a connection about to break.
    const incoming = incomingOf(c);
    if (incoming && !incoming.complete) c.res.headers.set("connection", "close");
  });

  if (options.e2b) {
    const { sandboxes, exec, files, pty, watch, templates, e2bKeys } = services;
    const history = options.e2b.metricsHistory ?? services.metricsHistory;
    mountE2b(app, { sandboxes, exec, files, pty, watch, templates, store: e2bKeys, auth: options.e2b.auth, history, log, metrics, preview: services.preview });
  }

  for (const [id, spec] of Object.entries(routes) as [RouteId, RouteSpec][]) {
    const path = spec.path.replace(/\{(\w+)\}/g, ":$1");
    const handler = handlers[id];
    app.on(spec.method.toUpperCase(), path, async function route(c) {
      const started = performance.now();
      nameRequestSpan(spec.method, spec.path, id);
      let status = 500;
      try {
        if (spec.auth || (id === "metrics" && metricsNeedKey(options.metricsAuth ?? "loopback", c))) {
          const given = Buffer.from(c.req.header("authorization") ?? "");
          if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
            throw new ApiError("unauthorized", "missing or wrong API key: send `Authorization: Bearer <key>`");
          }
        }
        const response = await handler(c, services);
        status = response.status;
        return response;
      } catch (err) {
        if (clientGone(c, err)) {
          // Nobody to answer; not the daemon's failure (499: nginx's "client closed request").
          status = 499;
          log.debug({ requestId: c.get("requestId"), route: id, reason: (err as Error).message }, "client went away mid-request");
          return sendError(c, new ApiError("invalid_request", "the client closed the connection"));
        }
        const apiError = toApiError(err);
        status = apiError.status;
        if (apiError.code === "internal") log.error({ err, requestId: c.get("requestId"), route: id }, "request failed");
        return sendError(c, apiError);
      } finally {
        const seconds = (performance.now() - started) / 1000;
        metrics.httpRequests.inc({ route: id, method: spec.method, status: String(status) });
        metrics.httpDuration.observe({ route: id, method: spec.method }, seconds);
        log.debug({ route: id, status, ms: Math.round(seconds * 1000), requestId: c.get("requestId") }, "request");
      }
    });
  }

  if (options.consoleDir !== false) mountConsole(app, options.consoleDir);

  app.notFound((c) => sendError(c, new ApiError("route_not_found", `no route ${c.req.method} ${c.req.path}`)));
  app.onError((err, c) => {
    if (clientGone(c, err)) log.debug({ requestId: c.get("requestId"), reason: err.message }, "client went away mid-request");
    else log.error({ err, requestId: c.get("requestId") }, "unhandled error");
    return sendError(c, toApiError(err));
  });
  return app;
}

/** Whether this /metrics request must carry the key: metrics name templates and tenants' activity. */
function metricsNeedKey(mode: MetricsAuth, c: Context<AppEnv>): boolean {
  if (mode !== "loopback") return mode === "key";
  const address = incomingOf(c)?.socket.remoteAddress ?? "";
  return !/^(127\.|::1$|::ffff:127\.)/.test(address);
}

/** Whether err is the client's disconnect (mid-body, or before the reply), not a failure to report. */
function clientGone(c: Context<AppEnv>, err: unknown): boolean {
  if (err instanceof ClientGoneError) return true;
  const incoming = incomingOf(c);
  return incoming !== undefined && (incoming.destroyed || incoming.socket.destroyed) && !(err instanceof ApiError);
}
