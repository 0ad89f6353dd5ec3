import type { Socket } from "node:net";

/** How long a reset takes to reach the sandbox's network stack before its memory is saved. */
const RESET_SETTLE_MS = 20;

/**
 * The connections the daemon holds into sandboxes (preview requests, tunnels, port-forwards), by sandbox,
 * so that a checkpoint can reset them first. runsc (2024-07-29) restores a connection that was open at the
 * checkpoint as a closed endpoint still bound to the server's address and port, and that endpoint answers
 * every new connection to the port with a reset until its process closes it (many servers never do: a
 * half-open WebSocket, an idle keep-alive). A connection reset before the checkpoint is gone from the
 * sandbox's stack, so it cannot shadow the listener; the checkpoint would have cut it anyway.
 */
export class InboundConnections {
  private readonly bySandbox = new Map<string, Set<Socket>>();

  track(id: string, socket: Socket): void {
    let set = this.bySandbox.get(id);
    if (!set) this.bySandbox.set(id, (set = new Set()));
    // A kept-alive connection is handed out again and again: registered once.
    if (set.has(socket)) return;
    set.add(socket);
    socket.once("close", () => {
      set.delete(socket);
      if (set.size === 0 && this.bySandbox.get(id) === set) this.bySandbox.delete(id);
    });
  }

  count(id: string): number {
    return this.bySandbox.get(id)?.size ?? 0;
  }

  /** Resets (TCP RST) every connection into the sandbox and gives the resets a moment to arrive. */
  async resetAll(id: string): Promise<number> {
    const set = this.bySandbox.get(id);
    if (!set || set.size === 0) return 0;
    const n = set.size;
    for (const socket of [...set]) {
      if (socket.connecting || socket.destroyed) socket.destroy();
      else socket.resetAndDestroy();
    }
    this.bySandbox.delete(id);
    await new Promise((r) => setTimeout(r, RESET_SETTLE_MS));
    return n;
  }
}
