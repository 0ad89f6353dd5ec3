import { ErrorResponseSchema, routes, type RouteId } from "@stasis/protocol";
import { resolveConnection, type ConnectionOptions, type ResolvedConnection } from "./connection.js";
import { ConnectionError, errorFromBody, StasisError, TimeoutError, protocolError } from "./errors.js";
import { parseJson, snippet, validate, type Output } from "./schema.js";

type Routes = typeof routes;
type RoutesOfKind<K extends string> = { [R in RouteId]: Routes[R]["response"]["kind"] extends K ? R : never }[RouteId];
export type JsonRouteId = RoutesOfKind<"json">;
export type NdjsonRouteId = RoutesOfKind<"ndjson">;
export type ReplyOf<R extends JsonRouteId | NdjsonRouteId> = Routes[R]["response"] extends { schema: infer S } ? Output<S> : never;

type QueryValue = string | number | boolean | undefined;

export interface CallArgs {
  /** Values for the {placeholders} of the route's path. */
  params?: Record<string, string | number>;
  query?: Record<string, QueryValue>;
  /** A JSON body, or `raw` for routes that take bytes. */
  json?: unknown;
  raw?: NonNullable<RequestInit["body"]>;
  /** Content type of a `raw` body. Default: application/octet-stream. */
  contentType?: string;
  signal?: AbortSignal | undefined;
  /** Client-side limit for the whole exchange; null disables it, undefined uses the connection default. */
  timeoutMs?: number | null | undefined;
}

/** One request per protocol route: builds it from the route table, checks status, maps every failure to a typed error. */
export class HttpClient {
  readonly connection: ResolvedConnection;

  constructor(options: ConnectionOptions = {}) {
    this.connection = resolveConnection(options);
  }

  /** Calls a JSON route and returns its validated reply. */
  async json<R extends JsonRouteId>(route: R, args: CallArgs = {}): Promise<ReplyOf<R>> {
    return this.exchange(route, args, async (response, requestId) => {
      const spec = routes[route].response;
      const ctx = { what: `reply to ${route}`, status: response.status, requestId };
      return validate(spec.schema, parseJson(await response.text(), ctx), ctx) as ReplyOf<R>;
    });
  }

  /** Calls a route that answers with no body. */
  async empty(route: RouteId, args: CallArgs = {}): Promise<void> {
    await this.exchange(route, args, async (response) => {
      await response.body?.cancel();
    });
  }

  /**
   * Opens a route whose body is consumed later (raw bytes, NDJSON). No client timeout applies by default:
   * the caller owns the body and its lifetime through `args.signal`.
   */
  async open(route: RouteId, args: CallArgs = {}): Promise<{ response: Response; requestId: string | undefined }> {
    return this.exchange(route, { timeoutMs: null, ...args }, async (response, requestId) => ({ response, requestId }));
  }

  private async exchange<T>(route: RouteId, args: CallArgs, consume: (response: Response, requestId: string | undefined) => Promise<T>): Promise<T> {
    const spec: (typeof routes)[RouteId] = routes[route];
    const timeoutMs = args.timeoutMs === undefined ? this.connection.requestTimeoutMs : args.timeoutMs;
    const timeout = timeoutMs === null || timeoutMs <= 0 ? undefined : AbortSignal.timeout(timeoutMs);
    const signals = [args.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    const url = this.url(spec.path, args);
    try {
      const response = await this.connection.fetch(url, { method: spec.method.toUpperCase(), ...this.body(args), ...(signal ? { signal } : {}) });
      const requestId = response.headers.get("x-request-id") ?? undefined;
      if (!response.ok) throw await replyError(response, `${spec.method.toUpperCase()} ${spec.path}`, requestId);
      return await consume(response, requestId);
    } catch (err) {
      throw transportError(err, `${spec.method.toUpperCase()} ${url}`, args.signal, timeout, timeoutMs);
    }
  }

  private url(template: string, args: CallArgs): string {
    const path = template.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = args.params?.[name];
      if (value === undefined) throw new TypeError(`missing path parameter '${name}' for ${template}`);
      return encodeURIComponent(String(value));
    });
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(args.query ?? {})) if (value !== undefined) query.set(key, String(value));
    const qs = query.toString();
    return `${this.connection.apiUrl}${path}${qs ? `?${qs}` : ""}`;
  }

  private body(args: CallArgs): RequestInit {
    const headers: Record<string, string> = { accept: "application/json, application/x-ndjson, */*" };
    if (this.connection.apiKey) headers.authorization = `Bearer ${this.connection.apiKey}`;
    if (args.raw !== undefined) {
      headers["content-type"] = args.contentType ?? "application/octet-stream";
      // Streaming request bodies need half-duplex in fetch; harmless for the others.
      return { headers, body: args.raw, duplex: "half" } as RequestInit;
    }
    if (args.json !== undefined) {
      headers["content-type"] = "application/json";
      return { headers, body: JSON.stringify(args.json) };
    }
    return { headers };
  }
}

async function replyError(response: Response, what: string, requestId: string | undefined): Promise<StasisError> {
  return errorFromReplyText(await response.text().catch(() => ""), response.status, what, requestId);
}

/** The typed error an error reply's body describes, or a ProtocolError when the body is not the protocol's. */
export function errorFromReplyText(text: string, status: number, what: string, requestId?: string): StasisError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const parsed = ErrorResponseSchema.safeParse(value);
  if (parsed.success) return errorFromBody({ ...parsed.data.error, requestId: parsed.data.error.requestId ?? requestId }, status);
  return protocolError(`${what} failed with HTTP ${status} and no protocol error body: ${snippet(text)}`, status, requestId);
}

/** Maps what fetch throws: the caller's abort passes through untouched, our timeout and network failures get types. */
export function transportError(err: unknown, what: string, callerSignal: AbortSignal | undefined, timeout: AbortSignal | undefined, timeoutMs?: number | null): unknown {
  if (err instanceof StasisError) return err;
  if (callerSignal?.aborted) return callerSignal.reason;
  if (timeout?.aborted) {
    return new TimeoutError({ code: "request_timeout", message: `${what}: no complete reply within ${timeoutMs} ms`, status: null, retryable: true, cause: err });
  }
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectionError({ code: "connection_failed", message: `${what} failed: ${message}${cause}`, status: null, retryable: true, cause: err });
}
