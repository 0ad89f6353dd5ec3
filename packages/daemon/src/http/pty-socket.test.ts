import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ApiError } from "../errors/api-error.js";
import type { OutputEvent } from "../services/exec-service.js";
import type { PtyService } from "../services/pty-service.js";
import { PtySocket } from "./pty-socket.js";

const KEY = "k-0123456789abcdef";

/** A terminal service stand-in: records calls; the test feeds the attached terminal's events. */
function fakePty(options: { check?: () => void; hibernating?: boolean } = {}) {
  const calls: string[] = [];
  let feed: ((e: OutputEvent | Error) => void) | null = null;
  const pty = {
    check: async () => options.check?.(),
    start: async (_id: string, p: { cols: number; rows: number }) => {
      calls.push(`start ${p.cols}x${p.rows}`);
      return { pid: 7 };
    },
    attach: async function* (_id: string, pid: number, replay: boolean): AsyncGenerator<OutputEvent> {
      calls.push(`attach ${pid} replay=${replay}`);
      yield { kind: "start", pid };
      const queue: (OutputEvent | Error)[] = [];
      let wake: (() => void) | null = null;
      feed = (e) => {
        queue.push(e);
        wake?.();
      };
      for (;;) {
        const e = queue.shift();
        if (!e) {
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        if (e instanceof Error) throw e;
        yield e;
        if (e.kind === "exit") return;
      }
    },
    input: async (_id: string, _pid: number, data: Buffer) => void calls.push(`input ${data.toString()}`),
    resize: async (_id: string, _pid: number, cols: number, rows: number) => void calls.push(`resize ${cols}x${rows}`),
    hibernating: () => options.hibernating ?? false,
  };
  return { pty: pty as unknown as PtyService, calls, feed: (e: OutputEvent | Error) => feed!(e) };
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function serve(pty: PtyService): Promise<string> {
  const socket = new PtySocket(KEY, pty, pino({ level: "silent" }));
  const server = createServer((_req, res) => res.end());
  servers.push(server);
  server.on("upgrade", (req, s, head) => {
    const id = socket.route(req);
    if (id) void socket.upgrade(req, s, head, id);
    else s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/sandboxes/sbx_1/pty`;
}

/** Opens a socket; resolves with it once open, or with the HTTP status and error code of a refusal. */
function open(url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<WebSocket | { status: number; code: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.protocols ?? [], options);
    // Collected from the start: the first message can come in the same read as the handshake's answer.
    const got = messages(ws);
    collected.set(ws, got);
    ws.on("open", () => resolve(ws));
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body) as { error: { code: string } }).error.code }));
    });
    ws.on("error", reject);
  });
}

const collected = new Map<WebSocket, ReturnType<typeof messages>>();

function messages(ws: WebSocket): { texts: unknown[]; bytes: string[]; closed: Promise<number> } {
  const out = { texts: [] as unknown[], bytes: [] as string[], closed: new Promise<number>((r) => ws.on("close", (code) => r(code))) };
  ws.on("message", (data, binary) => (binary ? out.bytes.push(data.toString()) : out.texts.push(JSON.parse(data.toString()))));
  return out;
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
};

describe("the terminal WebSocket", () => {
  it("refuses before upgrading, as HTTP errors: no key, a bad query, an agent without terminals", async () => {
    expect(await open(await serve(fakePty().pty))).toEqual({ status: 401, code: "unauthorized" });
    expect(await open(`${await serve(fakePty().pty)}?cols=0`, { headers: { authorization: `Bearer ${KEY}` } })).toEqual({ status: 400, code: "invalid_request" });
    const outdated = fakePty({ check: () => { throw new ApiError("agent_outdated", "old"); } }).pty;
    expect(await open(await serve(outdated), { headers: { authorization: `Bearer ${KEY}` } })).toEqual({ status: 409, code: "agent_outdated" });
  });

  it("takes the key as a subprotocol or a query token; carries keystrokes in order, resizes and the exit", async () => {
    const fake = fakePty();
    const url = await serve(fake.pty);
    const ws = (await open(`${url}?cols=100&rows=30`, { protocols: ["stasis.pty", "stasis.key." + KEY] })) as WebSocket;
    const got = collected.get(ws)!;
    expect(ws.protocol).toBe("stasis.pty");
    await until(() => got.texts.length > 0);
    expect(got.texts[0]).toEqual({ type: "started", pid: 7, replayed: false });
    for (const k of ["a", "b", "c"]) ws.send(Buffer.from(k), { binary: true });
    ws.send(JSON.stringify({ type: "resize", cols: 120, rows: 40 }));
    ws.send("not json");
    await until(() => fake.calls.includes("resize 120x40") && got.texts.length > 1);
    fake.feed({ kind: "data", fd: 1, data: Buffer.from("out") });
    fake.feed({ kind: "exit", exit: { type: "exit", exitCode: 3, signal: null, timedOut: false, durationMs: null } });
    expect(await got.closed).toBe(1000);
    expect(got.bytes).toEqual(["out"]);
    expect(got.texts).toContainEqual({ type: "exit", exitCode: 3, signal: null });
    expect(got.texts).toContainEqual(expect.objectContaining({ type: "error", error: expect.objectContaining({ code: "invalid_request" }) }));
    expect(fake.calls).toEqual(["start 100x30", "attach 7 replay=true", "input a", "input b", "input c", "resize 120x40"]);

    // Offered alone, the key's subprotocol is the one selected (a client that offers one must get one).
    const alone = (await open(await serve(fakePty().pty), { protocols: ["stasis.key." + KEY] })) as WebSocket;
    expect(alone.protocol).toBe("stasis.key." + KEY);
    alone.close();

    const again = fakePty();
    const ws2 = (await open(`${await serve(again.pty)}?pid=7&replay=false&access_token=${KEY}`)) as WebSocket;
    ws2.close();
    expect(again.calls).toEqual(["attach 7 replay=false"]);
  });

  it("closes with 4001 when the sandbox hibernates under it, 1011 with the error otherwise", async () => {
    const asleep = fakePty({ hibernating: true });
    const ws = (await open(`${await serve(asleep.pty)}?pid=7`, { headers: { authorization: `Bearer ${KEY}` } })) as WebSocket;
    const got = collected.get(ws)!;
    await until(() => got.texts.length > 0);
    asleep.feed(new ApiError("sandbox_failed", "agent channel closed"));
    expect(await got.closed).toBe(4001);

    const dead = fakePty();
    const ws2 = (await open(`${await serve(dead.pty)}?pid=7`, { headers: { authorization: `Bearer ${KEY}` } })) as WebSocket;
    const got2 = collected.get(ws2)!;
    await until(() => got2.texts.length > 0);
    dead.feed(new ApiError("sandbox_failed", "sandbox died"));
    expect(await got2.closed).toBe(1011);
    expect(got2.texts).toContainEqual(expect.objectContaining({ type: "error", error: expect.objectContaining({ code: "sandbox_failed" }) }));
  });
});
