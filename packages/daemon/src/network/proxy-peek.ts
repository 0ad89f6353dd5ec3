import type { Socket } from "node:net";
import { parseHttpHead } from "./http-host.js";
import { looksLikeTls, parseClientHello } from "./tls-sni.js";

/**
 * What the first bytes of a redirected connection say, read before any byte goes anywhere: TLS with its
 * SNI, HTTP with its Host, or neither (another protocol, or a client that waits for the server to speak
 * first). Reads at most `maxBytes` for at most `timeoutMs`; the client is left paused, `head` holding
 * everything read, to be sent on first.
 */
export type Peeked =
  /** `name` null: no SNI or Host, or an IP literal. */
  | { kind: "tls" | "http"; name: string | null; head: Buffer }
  | { kind: "other"; head: Buffer }
  /** Malformed, too long, too slow; `http` when it looked like HTTP (the proxy may answer 400). */
  | { kind: "refuse"; reason: string; http: boolean; head: Buffer }
  /** The client went away. */
  | { kind: "gone" };

type Step = Peeked | null;

export function classify(head: Buffer): Step {
  const first = head[0];
  if (first === undefined) return null;
  if (looksLikeTls(first)) {
    const r = parseClientHello(head);
    if (r.kind === "need-more") return null;
    if (r.kind === "invalid") return { kind: "refuse", reason: `bad TLS ClientHello: ${r.reason}`, http: false, head };
    return { kind: "tls", name: r.name, head };
  }
  const r = parseHttpHead(head);
  if (r.kind === "need-more") return null;
  if (r.kind === "other") return { kind: "other", head };
  if (r.kind === "invalid") return { kind: "refuse", reason: `bad HTTP request: ${r.reason}`, http: true, head };
  return { kind: "http", name: r.host, head };
}

export function peek(client: Socket, maxBytes: number, timeoutMs: number): Promise<Peeked> {
  return new Promise((resolve) => {
    let head = Buffer.alloc(0);
    let settled = false;
    const finish = (result: Peeked) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.off("data", onData);
      client.off("end", onGone);
      client.off("close", onGone);
      client.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const step = classify(head);
      if (step !== null) return finish(step);
      if (head.length >= maxBytes) finish({ kind: "refuse", reason: `no decision in the first ${maxBytes} bytes`, http: /^[A-Z]/.test(head.toString("latin1", 0, 1)), head });
    };
    const onGone = () => finish({ kind: "gone" });
    // Nothing sent at all: a protocol where the server speaks first; decided by address.
    const timer = setTimeout(() => finish(head.length === 0 ? { kind: "other", head } : { kind: "refuse", reason: "request head too slow", http: false, head }), timeoutMs);
    client.on("data", onData);
    client.on("end", onGone);
    client.on("close", onGone);
  });
}
