import pino, { type Logger } from "pino";

/** JSON logs to stderr; the API key never appears (authorization headers are redacted). */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "stasis" },
    redact: { paths: ["req.headers.authorization", "*.apiKey", "apiKey"], censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, pino.destination(2));
}
