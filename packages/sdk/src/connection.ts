import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defaultFetch } from "./node-transport.js";

export interface ConnectionOptions {
  /** Base URL of the daemon. Default: $STASIS_API_URL, else http://127.0.0.1:7070. */
  apiUrl?: string;
  /** Default: $STASIS_API_KEY, else the daemon's key file ($STASIS_DATA_DIR or /var/lib/stasis)/api-key. */
  apiKey?: string;
  /** Limit for ordinary API calls. Streams and file transfers are bounded only by their own signal. */
  requestTimeoutMs?: number;
  /** A fetch implementation, for tests or custom agents. */
  fetch?: typeof fetch;
}

export interface ResolvedConnection {
  apiUrl: string;
  apiKey: string | undefined;
  requestTimeoutMs: number;
  fetch: typeof fetch;
}

export const DEFAULT_API_URL = "http://127.0.0.1:7070";
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
const CONNECTION_KEYS = ["apiUrl", "apiKey", "requestTimeoutMs", "fetch"] as const;

export function resolveConnection(options: ConnectionOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedConnection {
  const apiUrl = (options.apiUrl ?? env.STASIS_API_URL ?? DEFAULT_API_URL).replace(/\/+$/, "");
  return {
    apiUrl,
    apiKey: options.apiKey ?? env.STASIS_API_KEY ?? readKeyFile(env),
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    // Node's own HTTP client where it behaves as fetch would; globalThis.fetch, looked up at call time,
    // where not or when it was patched after import (mocks, instrumentation): see node-transport.ts.
    fetch: options.fetch ?? defaultFetch,
  };
}

/** The daemon writes its key there on first start; on the same host the key file is the zero-config path. */
function readKeyFile(env: NodeJS.ProcessEnv): string | undefined {
  try {
    const key = readFileSync(join(env.STASIS_DATA_DIR ?? "/var/lib/stasis", "api-key"), "utf8").trim();
    return key === "" ? undefined : key;
  } catch {
    return undefined;
  }
}

/** Splits options that mix connection settings with a request body (as Sandbox.create takes them). */
export function splitConnection<T extends object>(options: T & ConnectionOptions): { connection: ConnectionOptions; rest: Omit<T, keyof ConnectionOptions> } {
  const connection: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if ((CONNECTION_KEYS as readonly string[]).includes(key)) connection[key] = value;
    else rest[key] = value;
  }
  return { connection: connection as ConnectionOptions, rest: rest as Omit<T, keyof ConnectionOptions> };
}
