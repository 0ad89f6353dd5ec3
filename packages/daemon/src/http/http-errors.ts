import type { Context } from "hono";
import type { ErrorResponse } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";

export function errorBody(err: ApiError, requestId: string): ErrorResponse {
  return {
    error: {
      code: err.code,
      message: err.message,
      requestId,
      retryable: err.retryable,
      ...(err.details ? { details: err.details } : {}),
    },
  };
}

/** Renders any thrown value as the one error shape; unknown errors become `internal` and are logged. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof SyntaxError) return new ApiError("invalid_request", `malformed JSON body: ${err.message}`);
  return new ApiError("internal", "internal error; see the daemon log for the request id");
}

export function sendError(c: Context, err: ApiError): Response {
  const requestId = (c.get("requestId") as string | undefined) ?? "unknown";
  return c.json(errorBody(err, requestId), err.status as 400);
}
