import { getRequestListener } from "@hono/node-server";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError } from "../errors/api-error.js";
import { ndjsonResponse } from "./ndjson.js";

/** Serves one NDJSON response through @hono/node-server, as the daemon does, and fetches it. */
async function serveOnce(events: () => AsyncGenerator<unknown>): Promise<Response> {
  const server = createServer(getRequestListener(() => ndjsonResponse(events(), "req-1")));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("an NDJSON response", () => {
  it("is sent whole, with its length, when its events are all ready with the first (a quick code run)", async () => {
    const res = await serveOnce(async function* () {
      yield { type: "result", text: "2" };
      await Promise.resolve();
      yield { type: "end", executionCount: 1 };
    });
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    expect(res.headers.get("transfer-encoding")).toBeNull();
    const text = await res.text();
    expect(res.headers.get("content-length")).toBe(String(Buffer.byteLength(text)));
    expect(text).toBe('{"type":"result","text":"2"}\n{"type":"end","executionCount":1}\n');
  });

  it("streams events that wait on I/O, the first before the later ones exist", async () => {
    let later = false;
    const res = await serveOnce(async function* () {
      yield { n: 1 };
      await tick(300);
      later = true;
      yield { n: 2 };
    });
    expect(res.headers.get("transfer-encoding")).toBe("chunked");
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toBe('{"n":1}\n');
    expect(later).toBe(false);
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    expect(rest).toBe('{"n":2}\n');
  });

  it("reports a failure after the first event in-band, gathered or streamed", async () => {
    for (const wait of [0, 100]) {
      const res = await serveOnce(async function* () {
        yield { n: 1 };
        if (wait) await tick(wait);
        throw new ApiError("code_interpreter_failed", "the server died");
      });
      expect(res.status).toBe(200);
      const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toEqual([{ n: 1 }, { type: "error", error: expect.objectContaining({ code: "code_interpreter_failed", message: "the server died", requestId: "req-1" }) }]);
    }
  });

  it("streams a long run of ready events instead of gathering them all", async () => {
    const res = await serveOnce(async function* () {
      for (let i = 0; i < 20_000; i++) yield { i, pad: "x".repeat(100) };
    });
    expect(res.headers.get("transfer-encoding")).toBe("chunked");
    expect((await res.text()).trim().split("\n")).toHaveLength(20_000);
  });
});
