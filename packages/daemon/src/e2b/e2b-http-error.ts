/** An E2B API error: `{code, message}` with code the HTTP status, as the SDK reads it. */
export class E2bHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
