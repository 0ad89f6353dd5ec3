import { errorRegistry, type ErrorCode } from "@stasis/protocol";

/** The one error type services throw; the HTTP layer renders it with the registry's status. */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ApiError";
  }

  get status(): number {
    return errorRegistry[this.code].status;
  }

  get retryable(): boolean {
    return errorRegistry[this.code].retryable;
  }
}
