import type { Context } from "hono";
import type { z } from "zod";
import type { ErrorCode } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import { describeIssues, readBody } from "../http/validation.js";

/**
 * The slice of the Connect protocol (connectrpc.com/docs/protocol) that envd's clients speak: JSON
 * encoding, unary calls and server streams, over HTTP/1.1. No binary protobuf, no compression.
 */

export type ConnectCode =
  | "canceled"
  | "unknown"
  | "invalid_argument"
  | "deadline_exceeded"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "aborted"
  | "unimplemented"
  | "internal"
  | "unavailable"
  | "unauthenticated";

const httpStatus: Record<ConnectCode, number> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 412,
  aborted: 409,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  unauthenticated: 401,
};

export class ConnectError extends Error {
  constructor(
    readonly code: ConnectCode,
    message: string,
  ) {
    super(message);
    this.name = "ConnectError";
  }
}

/** Stasis's error codes in Connect's terms, so the SDK raises the error class its users catch. */
const fromApiCode: Record<ErrorCode, ConnectCode> = {
  invalid_request: "invalid_argument",
  unauthorized: "unauthenticated",
  permission_denied: "permission_denied",
  route_not_found: "unimplemented",
  sandbox_not_found: "not_found",
  process_not_found: "not_found",
  file_not_found: "not_found",
  key_not_found: "not_found",
  secret_not_found: "not_found",
  template_not_found: "not_found",
  template_in_use: "failed_precondition",
  invalid_template: "invalid_argument",
  template_build_failed: "failed_precondition",
  method_not_allowed: "unimplemented",
  file_exists: "already_exists",
  not_a_directory: "invalid_argument",
  is_a_directory: "invalid_argument",
  directory_not_empty: "failed_precondition",
  name_too_long: "invalid_argument",
  symlink_loop: "invalid_argument",
  not_a_regular_file: "invalid_argument",
  file_busy: "failed_precondition",
  cross_device: "failed_precondition",
  stdin_closed: "failed_precondition",
  insufficient_storage: "resource_exhausted",
  reply_too_large: "internal",
  sandbox_not_running: "unavailable",
  not_supported_by_runtime: "unimplemented",
  agent_outdated: "unimplemented",
  payload_too_large: "resource_exhausted",
  unsupported_media_type: "invalid_argument",
  capacity_exceeded: "resource_exhausted",
  internal: "internal",
  exec_failed: "invalid_argument",
  secrets_unavailable: "unavailable",
  runtime_unavailable: "unavailable",
  network_unavailable: "failed_precondition",
  domain_not_found: "not_found",
  port_closed: "unavailable",
  context_not_found: "not_found",
  code_interpreter_unavailable: "failed_precondition",
  code_interpreter_failed: "unavailable",
  sandbox_failed: "unavailable",
  agent_timeout: "unavailable",
  stream_overflow: "resource_exhausted",
};

export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof ApiError) return new ConnectError(fromApiCode[err.code], err.message);
  return new ConnectError("internal", "internal error; see the daemon log");
}

/**
 * Thrown by a stream's source to end it the way a dead sandbox ends E2B's streams: the connection drops
 * mid-stream, with no end-of-stream message (the SDK then probes /health to tell why).
 */
export class StreamDropped extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StreamDropped";
  }
}

const MAX_MESSAGE_BYTES = 2 * 1024 * 1024;

function decode<S extends z.ZodType>(schema: S, text: string): z.output<S> {
  let value: unknown;
  try {
    value = text.trim() === "" ? {} : JSON.parse(text);
  } catch (err) {
    throw new ConnectError("invalid_argument", `malformed JSON message: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ConnectError("invalid_argument", `invalid message: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

function checkEncoding(c: Context, expected: string): void {
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim();
  if (type !== expected) {
    throw new ConnectError("unimplemented", `Stasis's envd speaks Connect with JSON only (content-type ${expected}), not '${type || "none"}'`);
  }
  const encoding = c.req.header("connect-content-encoding") ?? c.req.header("content-encoding");
  if (encoding && encoding !== "identity") throw new ConnectError("unimplemented", `compressed messages (${encoding}) are not supported`);
}

/** A unary request: the JSON body is the message. */
export async function unaryRequest<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  checkEncoding(c, "application/json");
  return decode(schema, (await readBody(c, MAX_MESSAGE_BYTES)).toString("utf8"));
}

/** A server-stream request: one enveloped message (flags byte, big-endian length, JSON). */
export async function streamRequest<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  checkEncoding(c, "application/connect+json");
  const body = await readBody(c, MAX_MESSAGE_BYTES + 5);
  if (body.length < 5) throw new ConnectError("invalid_argument", "the request has no enveloped message");
  const flags = body[0]!;
  const length = body.readUInt32BE(1);
  if (flags & 0x01) throw new ConnectError("unimplemented", "compressed messages are not supported");
  if (body.length !== 5 + length) throw new ConnectError("invalid_argument", "the enveloped message's length does not match the body");
  return decode(schema, body.subarray(5).toString("utf8"));
}

/** The client's deadline (Connect-Timeout-Ms), in ms; null when it set none. */
export function deadlineMs(c: Context): number | null {
  const header = c.req.header("connect-timeout-ms");
  if (!header) return null;
  const ms = Number(header);
  return Number.isFinite(ms) && ms > 0 ? ms : null;
}

export function unaryResponse(message: object): Response {
  return new Response(JSON.stringify(message), { status: 200, headers: { "content-type": "application/json" } });
}

export function unaryError(err: unknown): Response {
  const e = toConnectError(err);
  return new Response(JSON.stringify({ code: e.code, message: e.message }), {
    status: httpStatus[e.code],
    headers: { "content-type": "application/json" },
  });
}

function envelope(flags: number, message: object): Uint8Array {
  const json = Buffer.from(JSON.stringify(message));
  const out = Buffer.allocUnsafe(5 + json.length);
  out[0] = flags;
  out.writeUInt32BE(json.length, 1);
  json.copy(out, 5);
  return out;
}

/**
 * A server stream fed by an async generator, pulled as fast as the client reads. It ends with the
 * end-of-stream envelope, carrying the error when the generator threw (StreamDropped: no envelope, the
 * connection is cut). Errors before the first message
 * are sent the same way (HTTP 200, error in the end envelope), as the protocol allows.
 */
export function streamResponse(messages: AsyncGenerator<object>): Response {
  let finished = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (finished) return;
      try {
        const next = await messages.next();
        if (next.done) {
          finished = true;
          controller.enqueue(envelope(0x02, {}));
          controller.close();
          return;
        }
        controller.enqueue(envelope(0x00, next.value));
      } catch (err) {
        finished = true;
        // Erroring the body makes the HTTP server cut the connection instead of ending the response.
        if (err instanceof StreamDropped) return controller.error(err);
        const e = toConnectError(err);
        controller.enqueue(envelope(0x02, { error: { code: e.code, message: e.message } }));
        controller.close();
      }
    },
    async cancel() {
      finished = true;
      await messages.return(undefined);
    },
  });
  return new Response(stream, { status: 200, headers: { "content-type": "application/connect+json", "cache-control": "no-store" } });
}

/** An immediate end of stream with an error: for a stream call refused before it started. */
export function streamError(err: unknown): Response {
  const e = toConnectError(err);
  return new Response(envelope(0x02, { error: { code: e.code, message: e.message } }), {
    status: 200,
    headers: { "content-type": "application/connect+json" },
  });
}
