import { context, propagation, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { DAEMON_VERSION } from "../version.js";

export interface Tracing {
  /** Whether spans are recorded and exported (false: the API's no-op tracer, nothing registered). */
  readonly enabled: boolean;
  /** Exports the spans still queued, then unregisters the provider. */
  shutdown(): Promise<void>;
}

const OFF: Tracing = { enabled: false, shutdown: async () => {} };

/**
 * Tracing is on when an OTLP endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), unless OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. The
 * exporter, batch processor and sampler read their standard OTEL_* variables themselves.
 */
export function tracingWanted(env: NodeJS.ProcessEnv): boolean {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  return !!endpoint && env.OTEL_SDK_DISABLED?.trim().toLowerCase() !== "true" && env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() !== "none";
}

/** How long a stop waits for the last export: a collector that is down must not hold the daemon's stop. */
export const FLUSH_ON_STOP_MS = 5_000;

/** Registers a global tracer provider exporting over OTLP/HTTP when wanted; a no-op otherwise. */
export function startTracing(env: NodeJS.ProcessEnv = process.env, processor?: SpanProcessor, flushWithinMs = FLUSH_ON_STOP_MS): Tracing {
  if (!processor && !tracingWanted(env)) return OFF;
  // service.name defaults to `stasis`; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": "stasis", "service.version": DAEMON_VERSION }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor ?? new BatchSpanProcessor(new OTLPTraceExporter())] });
  // AsyncLocalStorage context (spans follow awaits) and the W3C traceparent/baggage propagators.
  provider.register();
  return {
    enabled: true,
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, flushWithinMs)));
      await Promise.race([provider.shutdown(), gaveUp]).finally(() => clearTimeout(timer));
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}
