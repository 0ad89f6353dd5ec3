import { protocolError } from "./errors.js";

/** The part of a zod schema the SDK uses; keeps zod itself out of the SDK's own imports. */
export interface Schema<T> {
  safeParse(value: unknown):
    | { success: true; data: T }
    | { success: false; error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } };
}

export type Output<S> = S extends Schema<infer T> ? T : never;

export interface ReplyContext {
  what: string;
  status: number | null;
  requestId?: string | undefined;
}

/** Validates a decoded reply; anything off-contract becomes a ProtocolError instead of a wrong type. */
export function validate<T>(schema: Schema<T>, value: unknown, ctx: ReplyContext): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.map(String).join(".") : "(root)"}: ${i.message}`)
    .join("; ");
  return fail(`${ctx.what} does not match the protocol: ${issues}`, ctx);
}

export function parseJson(text: string, ctx: ReplyContext): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    return fail(`${ctx.what} is not valid JSON: ${snippet(text)}`, ctx, err);
  }
}

export function snippet(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat || "(empty)";
}

function fail(message: string, ctx: ReplyContext, cause?: unknown): never {
  throw protocolError(message, ctx.status, ctx.requestId, cause);
}
