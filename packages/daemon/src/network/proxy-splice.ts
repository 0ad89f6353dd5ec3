import type { Socket } from "node:net";

/** Bytes one sandbox moved through the proxy, and its connections. */
export interface ProxyCounter {
  /** Sandbox to the world (requests, uploads). */
  bytesOut: number;
  /** The world to the sandbox (responses, downloads). */
  bytesIn: number;
  /** Connections accepted, ever. */
  connections: number;
  /** Connections open now (being read, decided, or spliced). */
  active: number;
  /** Connections refused (policy, guardrails, caps, malformed). */
  denied: number;
}

export const newCounter = (): ProxyCounter => ({ bytesOut: 0, bytesIn: 0, connections: 0, active: 0, denied: 0 });

/**
 * Joins the client and the upstream both ways with backpressure (pipe), `head` (what the proxy read
 * from the client to decide) first. An end on one side half-closes the other (the server may still
 * answer a client that sent its FIN); an error, or no traffic either way for `idleMs`, closes both.
 * Both sockets must have been made with allowHalfOpen.
 */
export function splice(client: Socket, upstream: Socket, head: Buffer, counter: ProxyCounter, idleMs: number): void {
  const destroyBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", destroyBoth);
  upstream.on("error", destroyBoth);
  // A clean close of one side means both its directions are done: let the other finish its writes.
  client.on("close", (hadError) => (hadError ? upstream.destroy() : upstream.end()));
  upstream.on("close", (hadError) => (hadError ? client.destroy() : client.end()));
  // Activity on either socket (reads and writes) resets its own timer; a download keeps both alive.
  client.setTimeout(idleMs, destroyBoth);
  upstream.setTimeout(idleMs, destroyBoth);

  client.on("data", (chunk: Buffer) => (counter.bytesOut += chunk.length));
  upstream.on("data", (chunk: Buffer) => (counter.bytesIn += chunk.length));
  if (head.length > 0) {
    counter.bytesOut += head.length;
    upstream.write(head);
  }
  client.pipe(upstream);
  upstream.pipe(client);
}
