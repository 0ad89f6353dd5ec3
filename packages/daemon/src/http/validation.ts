import type { ServerResponse } from "node:http";
import type { Context } from "hono";
import type { z } from "zod";
import { ApiError } from "../errors/api-error.js";
import { requestBody } from "./request-body.js";

const MAX_JSON_BODY_BYTES = 2 * 1024 * 1024;

/** The first few issues of a failed validation, as one line. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join(".") : "(body)"}: ${i.message}`)
    .join("; ");
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new ApiError("invalid_request", `invalid ${where}: ${describeIssues(result.error)}`, { issues: result.error.issues.slice(0, 20) });
  }
  return result.data;
}

/** Reads and validates a JSON body, bounded in size. An empty body counts as `{}`. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const type = c.req.header("content-type") ?? "";
  const length = Number(c.req.header("content-length") ?? "0");
  if (length > MAX_JSON_BODY_BYTES) throw tooLarge(MAX_JSON_BODY_BYTES);
  const text = await readText(c, MAX_JSON_BODY_BYTES);
  if (text.trim() !== "" && !type.includes("application/json")) {
    throw new ApiError("unsupported_media_type", "send JSON with content-type: application/json");
  }
  let value: unknown = {};
  if (text.trim() !== "") {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new ApiError("invalid_request", `malformed JSON body: ${(err as Error).message}`);
    }
  }
  return parseWith(schema, value, "body");
}

export function query<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  return parseWith(schema, c.req.query(), "query");
}

/**
 * Reads a small body straight from Node's request when served by @hono/node-server: converting it to a
 * web stream first costs about a millisecond per request, a large share of a command's round trip.
 */
async function readText(c: Context, maxBytes: number): Promise<string> {
  return (await readBody(c, maxBytes)).toString("utf8");
}

/** The whole request body, refused once it passes maxBytes (or when it stalls). */
export async function readBody(c: Context, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of requestBody(c)) {
    total += chunk.length;
    if (total > maxBytes) throw tooLarge(maxBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError("payload_too_large", `request bodies here are limited to ${maxBytes} bytes`);
}

/**
 * Aborts when the client goes away before the response is complete. Served by @hono/node-server this
 * listens on Node's response directly; `c.req.raw.signal` would first build a whole web Request.
 */
export function clientGone(c: Context): AbortSignal {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (!outgoing) return c.req.raw.signal;
  const controller = new AbortController();
  if (outgoing.destroyed && !outgoing.writableFinished) controller.abort(new Error("client connection closed"));
  outgoing.once("close", () => {
    if (!outgoing.writableFinished) controller.abort(new Error("client connection closed"));
  });
  return controller.signal;
}
