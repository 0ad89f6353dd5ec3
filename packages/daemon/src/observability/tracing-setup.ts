import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";

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

/**
 * Registers a global tracer provider exporting over OTLP/HTTP when wanted; a no-op otherwise. The SDK
 * (a hundred-odd modules, ~90 ms of a ~430 ms start, several times that on a loaded host) is loaded
 * only when tracing is on.
 */
export async function startTracing(env: NodeJS.ProcessEnv = process.env, processor?: SpanProcessor, flushWithinMs = FLUSH_ON_STOP_MS): Promise<Tracing> {
  if (!processor && !tracingWanted(env)) return OFF;
  const { registerTracing } = await import("./tracing-sdk.js");
  return registerTracing(processor, flushWithinMs);
}
