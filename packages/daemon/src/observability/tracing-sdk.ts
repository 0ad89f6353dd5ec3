import { context, propagation, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { DAEMON_VERSION } from "../version.js";
import type { Tracing } from "./tracing-setup.js";

/** The OpenTelemetry SDK's side of startTracing (tracing-setup.ts), loaded only when tracing is on. */
export function registerTracing(processor: SpanProcessor | undefined, flushWithinMs: number): Tracing {
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
