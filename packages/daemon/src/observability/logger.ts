import pino, { type DestinationStream, type Logger } from "pino";
import { traceFields } from "./tracing.js";

/**
 * JSON logs to stderr; the API key never appears (authorization headers are redacted). A line written
 * inside a span carries its `trace_id` and `span_id`.
 */
export function createLogger(level: string, destination: DestinationStream = pino.destination(2)): Logger {
  return pino({
    level,
    base: { service: "stasis" },
    redact: { paths: ["req.headers.authorization", "*.apiKey", "apiKey"], censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: () => traceFields(),
  }, destination);
}
