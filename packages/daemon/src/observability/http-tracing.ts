import type { IncomingMessage, ServerResponse } from "node:http";
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { tracer } from "./tracing.js";

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * A server span around each API request, continuing the caller's trace when it sends a W3C `traceparent`.
 * The span ends when the response does (a stream's too); the app renames it after its route.
 */
export function tracedRequests(listener: Listener): Listener {
  return (req, res) => {
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const method = req.method ?? "GET";
    const span = tracer().startSpan(method, { kind: SpanKind.SERVER, attributes: { "http.request.method": method, "url.path": (req.url ?? "/").split("?")[0] } }, parent);
    res.once("close", () => {
      span.setAttribute("http.response.status_code", res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      if (!res.writableFinished) span.setAttribute("stasis.response.aborted", true);
      span.end();
    });
    context.with(trace.setSpan(parent, span), () => listener(req, res));
  };
}

/** Names the request's server span after its route (`POST /v1/sandboxes/{id}/exec`), as OpenTelemetry's HTTP conventions do. */
export function nameRequestSpan(method: string, route: string, operation: string): void {
  const span = trace.getActiveSpan();
  if (!span) return;
  span.updateName(`${method.toUpperCase()} ${route}`);
  span.setAttributes({ "http.route": route, "stasis.operation": operation });
}
