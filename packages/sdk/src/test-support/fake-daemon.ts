import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  url: URL;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export type FakeHandler = (req: RecordedRequest, res: ServerResponse, raw: IncomingMessage) => unknown;

export interface FakeDaemon {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** A real HTTP server on a random port, so tests exercise fetch, chunking and connection teardown for real. */
export async function startFakeDaemon(handler: FakeHandler): Promise<FakeDaemon> {
  const requests: RecordedRequest[] = [];
  const server = createServer((raw, res) => {
    const chunks: Buffer[] = [];
    raw.on("data", (c: Buffer) => chunks.push(c));
    raw.on("end", () => {
      const req: RecordedRequest = { method: raw.method ?? "", url: new URL(raw.url ?? "/", "http://fake"), headers: raw.headers, body: Buffer.concat(chunks) };
      requests.push(req);
      void Promise.resolve(handler(req, res, raw)).catch((err: unknown) => {
        res.statusCode = 599;
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

const STANDBY_STATES = new Set(["paused", "hibernating", "hibernated"]);

/** A sandbox resource; in a standby state it is there by request unless `standbyReason` says otherwise. */
export function sandboxResource(id = "sbx_0123456789abcdef", overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const standbyReason = STANDBY_STATES.has(String(overrides.state)) ? "requested" : null;
  return {
    id,
    template: "base",
    runtime: "gvisor",
    state: "running",
    stateReason: null,
    cpu: 1,
    memoryMiB: 512,
    diskMiB: 4096,
    env: {},
    metadata: {},
    timeoutMs: 300000,
    onTimeout: "standby",
    idleTimeoutMs: 15000,
    hibernateAfterMs: 600000,
    createdAt: "2025-01-01T00:00:00.000Z",
    expiresAt: "2025-01-01T00:05:00.000Z",
    standbySince: null,
    standbyReason,
    forkedFrom: null,
    createdVia: "cold",
    ...overrides,
  };
}

export interface FakeE2bKey {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  /** Kept here only so tests can compare it with what create returned. */
  key: string;
}

export interface FakeE2bKeyRoutes {
  keys: FakeE2bKey[];
  /** Answers POST/GET /v1/e2b/keys and DELETE /v1/e2b/keys/{keyId}; returns false for any other route. */
  handle(req: RecordedRequest, res: ServerResponse): boolean;
}

/** The daemon's E2B key routes over an in-memory list, with ids ek_000000000001, ek_000000000002, ... */
export function e2bKeyRoutes(): FakeE2bKeyRoutes {
  const keys: FakeE2bKey[] = [];
  let issued = 0;
  const publicKey = ({ key: _key, ...rest }: FakeE2bKey) => rest;
  return {
    keys,
    handle(req, res) {
      const [, v1, e2b, what, keyId, ...more] = req.url.pathname.split("/");
      if (v1 !== "v1" || e2b !== "e2b" || what !== "keys" || more.length > 0) return false;
      if (keyId === undefined && req.method === "POST") {
        const body = req.body.length ? (JSON.parse(req.body.toString()) as { name?: string }) : {};
        const key = `e2b_${randomBytes(20).toString("hex")}`;
        const record: FakeE2bKey = {
          id: `ek_${String(++issued).padStart(12, "0")}`,
          name: body.name ?? "default",
          prefix: key.slice(0, 10),
          createdAt: new Date(Date.UTC(2025, 0, 1, 0, 0, issued)).toISOString(),
          lastUsedAt: null,
          key,
        };
        keys.push(record);
        sendJson(res, 201, record);
        return true;
      }
      if (keyId === undefined && req.method === "GET") {
        sendJson(res, 200, { keys: keys.map(publicKey) });
        return true;
      }
      if (keyId !== undefined && req.method === "DELETE") {
        const index = keys.findIndex((k) => k.id === keyId);
        if (index < 0) {
          sendJson(res, 404, { error: { code: "key_not_found", message: `no E2B key ${keyId}`, retryable: false } });
          return true;
        }
        keys.splice(index, 1);
        res.writeHead(204).end();
        return true;
      }
      return false;
    },
  };
}

export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A template version as the daemon describes it. */
export function templateResource(name = "py", version = 1, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    version,
    ref: `${name}:${version}`,
    latest: true,
    source: "dockerfile",
    from: "debian:bookworm",
    builtAt: "2025-01-01T00:00:00.000Z",
    buildMs: 4200,
    layers: 3,
    sizeBytes: 52_428_800,
    env: { PATH: "/usr/local/bin:/usr/bin:/bin" },
    workdir: "/app",
    user: null,
    start: null,
    ready: null,
    resources: { cpu: 1, memoryMiB: 512, diskMiB: 4096 },
    pool: 0,
    snapshot: null,
    ...overrides,
  };
}

/** Writes NDJSON lines, each as its own chunk with a pause, so the client sees them arrive apart. */
export async function sendNdjson(res: ServerResponse, lines: (string | object)[], headers: Record<string, string> = {}): Promise<void> {
  res.writeHead(200, { "content-type": "application/x-ndjson", ...headers });
  res.flushHeaders();
  for (const line of lines) {
    if (res.destroyed) return;
    res.write(typeof line === "string" ? line : `${JSON.stringify(line)}\n`);
    await delay(5);
  }
  res.end();
}
