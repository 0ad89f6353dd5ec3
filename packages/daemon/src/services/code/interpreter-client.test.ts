import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { InterpreterClient, readBounded, settle } from "./interpreter-client.js";

/** A stand-in for the sandbox's interpreter on a free local port, counting the connections it accepted. */
async function interpreter(handle: (req: IncomingMessage, res: ServerResponse, nth: number) => void): Promise<{ server: Server; port: number; connections: () => number }> {
  let connections = 0;
  let requests = 0;
  const server = createServer((req, res) => {
    requests += 1;
    req.resume();
    req.once("end", () => handle(req, res, requests));
  });
  server.on("connection", () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, connections: () => connections };
}

const servers: Server[] = [];
const clients: InterpreterClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

function client(port: number, idleMs?: number): { client: InterpreterClient; idle: Socket[] } {
  const idle: Socket[] = [];
  const c = new InterpreterClient((socket) => idle.push(socket), { port, ...(idleMs ? { idleMs } : {}) });
  clients.push(c);
  return { client: c, idle };
}

const ok = (_req: IncomingMessage, res: ServerResponse): void => void res.end('{"ok":true}');

describe("the daemon's HTTP client for sandboxes' interpreters", () => {
  it("sends request after request on one kept connection, handed back as idle after each reply", async () => {
    const i = await interpreter(ok);
    servers.push(i.server);
    const { client: c, idle } = client(i.port);
    const seen: Socket[] = [];
    for (let n = 0; n < 3; n++) {
      const reply = await c.request("127.0.0.1", "POST", "/execute", { code: "x + 1" }, undefined, (s) => seen.push(s));
      expect(await readBounded(reply.body)).toBe('{"ok":true}');
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(i.connections()).toBe(1);
    expect(new Set(seen).size).toBe(1);
    expect(idle).toHaveLength(3);
    expect(idle[0]).toBe(seen[0]);
  });

  it("does not cut a reply that stays quiet for longer than the idle timeout", async () => {
    const i = await interpreter((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.flushHeaders();
      setTimeout(() => res.end('{"type":"end_of_execution"}\n'), 400);
    });
    servers.push(i.server);
    const { client: c } = client(i.port, 100);
    const reply = await c.request("127.0.0.1", "POST", "/execute", {});
    expect(await readBounded(reply.body)).toBe('{"type":"end_of_execution"}\n');
  });

  it("retries once on a fresh connection when the kept one was reset under the request", async () => {
    const i = await interpreter((req, res, nth) => {
      if (nth === 2) return void req.socket.resetAndDestroy();
      ok(req, res);
    });
    servers.push(i.server);
    const { client: c } = client(i.port);
    await readBounded((await c.request("127.0.0.1", "GET", "/contexts", undefined)).body);
    await new Promise((resolve) => setImmediate(resolve));
    const again = await c.request("127.0.0.1", "GET", "/contexts", undefined);
    expect(await readBounded(again.body)).toBe('{"ok":true}');
    expect(i.connections()).toBe(2);
  });

  it("keeps the connection of a reply whose end follows its last line, and drops one whose end never comes", async () => {
    const i = await interpreter((_req, res, nth) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write('{"type":"end_of_execution"}\n');
      if (nth === 1) setTimeout(() => res.end(), 50);
      else setInterval(() => res.write("\n"), 100).unref(); // never ends
    });
    servers.push(i.server);
    const { client: c, idle } = client(i.port);
    const first = await c.request("127.0.0.1", "POST", "/execute", {});
    first.body.once("data", () => settle(first.body));
    await new Promise((resolve) => first.body.once("end", resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(idle).toHaveLength(1);
    const second = await c.request("127.0.0.1", "POST", "/execute", {});
    expect(i.connections()).toBe(1);
    second.body.once("data", () => settle(second.body));
    await new Promise((resolve) => second.body.once("close", resolve));
    expect(second.body.destroyed).toBe(true);
    expect(idle).toHaveLength(1);
  });
});
