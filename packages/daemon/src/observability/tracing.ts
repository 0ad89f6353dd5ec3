import { context, isSpanContextValid, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";
import { ApiError } from "../errors/api-error.js";
import { DAEMON_VERSION } from "../version.js";

/**
 * Spans through the OpenTelemetry API only: without a registered provider (OTEL_EXPORTER_OTLP_ENDPOINT
 * unset) every call here lands on the API's no-op tracer, which records and exports nothing.
 */
export function tracer() {
  return trace.getTracer("stasis", DAEMON_VERSION);
}

/** Runs `fn` in a new active span (a child of the current one), recording its error and ending it. */
export function traced<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, kind = SpanKind.INTERNAL): Promise<T> {
  return tracer().startActiveSpan(name, { attributes, kind }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Marks the span failed: the exception as an event, the status, and the API's error code when there is one. */
export function failSpan(span: Span, err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message.slice(0, 500) });
  if (err instanceof ApiError) span.setAttribute("stasis.error.code", err.code);
}

/** Adds attributes to the active span (known only midway, such as a new sandbox's id). */
export function annotate(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}

/** Runs `fn` with `span` active, so spans started inside (a wake before an exec) are its children. */
export function within<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/**
 * The ids pino adds to a line written inside a span (none outside one, and none with tracing off). An
 * unsampled trace's ids are kept too: they still tie the line to the client's trace.
 */
export function traceFields(active: Context = context.active()): { trace_id: string; span_id: string } | Record<string, never> {
  const span = trace.getSpan(active);
  if (!span) return {};
  const ids = span.spanContext();
  return isSpanContextValid(ids) ? { trace_id: ids.traceId, span_id: ids.spanId } : {};
}
