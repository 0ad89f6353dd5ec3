import { connect, createServer, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { InboundConnections } from "./inbound-connections.js";

describe("InboundConnections", () => {
  it("resets (RST, not FIN) every tracked connection of one sandbox, and only its own", async () => {
    const accepted: Socket[] = [];
    const server = createServer((s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const inbound = new InboundConnections();
    const open = async (id: string) => {
      const c = connect(port, "127.0.0.1");
      await new Promise((r) => c.once("connect", r));
      inbound.track(id, c);
      return c;
    };
    const [a1, a2, b] = [await open("sbx_a"), await open("sbx_a"), await open("sbx_b")];
    while (accepted.length < 3) await new Promise((r) => setTimeout(r, 5));
    const seen = accepted.map((s) => new Promise<string>((resolve) => {
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      s.once("end", () => resolve("fin"));
    }));
    expect(inbound.count("sbx_a")).toBe(2);
    expect(await inbound.resetAll("sbx_a")).toBe(2);
    expect(await Promise.all(seen.slice(0, 2))).toEqual(["ECONNRESET", "ECONNRESET"]);
    expect(a1.destroyed && a2.destroyed).toBe(true);
    expect(b.destroyed).toBe(false);
    expect(inbound.count("sbx_a")).toBe(0);
    expect(await inbound.resetAll("sbx_a")).toBe(0);
    // A connection that closes by itself is forgotten.
    b.destroy();
    await new Promise((r) => setTimeout(r, 10));
    expect(inbound.count("sbx_b")).toBe(0);
    for (const s of accepted) s.destroy();
    server.close();
  });

  it("closes idle connections gently (FIN, then the peer's), resets those in use, and closeIdle leaves the busy ones", async () => {
    const accepted: Socket[] = [];
    // Servers close their end when the client closes its own (as HTTP servers do).
    const server = createServer({ allowHalfOpen: false }, (s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const inbound = new InboundConnections();
    const open = async (idle: boolean) => {
      const c = connect(port, "127.0.0.1");
      await new Promise((r) => c.once("connect", r));
      inbound.track("sbx_a", c, { idle: false });
      if (idle) inbound.markIdle(c);
      return c;
    };
    const idle = await open(true);
    const busy = await open(false);
    while (accepted.length < 2) await new Promise((r) => setTimeout(r, 5));
    const seen = accepted.map((s) => new Promise<string>((resolve) => {
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      s.once("end", () => resolve("fin"));
    }));
    expect(await inbound.closeIdle("sbx_a")).toBe(1);
    expect(await seen[0]).toBe("fin");
    expect(idle.destroyed).toBe(true);
    expect(busy.destroyed).toBe(false);
    // Handed out again, a kept-alive connection is busy: reset, not closed.
    const again = await open(true);
    inbound.track("sbx_a", again, { idle: false });
    while (accepted.length < 3) await new Promise((r) => setTimeout(r, 5));
    const seenAgain = new Promise<string>((resolve) => {
      accepted[2]!.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      accepted[2]!.once("end", () => resolve("fin"));
    });
    expect(await inbound.resetAll("sbx_a")).toBe(2);
    expect(await seen[1]).toBe("ECONNRESET");
    expect(await seenAgain).toBe("ECONNRESET");
    for (const s of accepted) s.destroy();
    server.close();
  });
});
