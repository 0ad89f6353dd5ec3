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

export function sandboxResource(id = "sbx_0123456789abcdef", overrides: Record<string, unknown> = {}): Record<string, unknown> {
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
    forkedFrom: null,
    ...overrides,
  };
}

export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
