import type { Socket } from "node:net";

/** How long a reset takes to reach the sandbox's network stack before its memory is saved. */
const RESET_SETTLE_MS = 20;
/** How long an idle kept-alive connection's server gets to close its end after ours. */
const CLOSE_WAIT_MS = 300;

/**
 * The connections the daemon holds into sandboxes (preview requests, kept-alive connections, tunnels,
 * port-forwards), by sandbox, so that a checkpoint can end them first. runsc (2024-07-29) restores a
 * connection that was open at the checkpoint as a closed endpoint still bound to the server's address and
 * port, and that endpoint answers every new connection to the port with a reset until its process closes it
 * (many servers never do: a half-open WebSocket). An idle kept-alive connection is closed gently (its
 * server closes its end too); one in use is reset. Either way it is gone from the sandbox's stack before
 * the checkpoint, which would have cut it anyway.
 */
export class InboundConnections {
  private readonly bySandbox = new Map<string, Set<Socket>>();
  private readonly idle = new WeakSet<Socket>();

  track(id: string, socket: Socket, state: { idle: boolean } = { idle: false }): void {
    if (state.idle) this.idle.add(socket);
    else this.idle.delete(socket);
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

  /** The connection carries no request now (back in a keep-alive pool). */
  markIdle(socket: Socket): void {
    this.idle.add(socket);
  }

  /** Closes the sandbox's idle connections (FIN), waiting a while for their servers to close their ends. */
  async closeIdle(id: string): Promise<number> {
    const set = this.bySandbox.get(id);
    const idle = [...(set ?? [])].filter((s) => this.isIdle(s));
    await Promise.all(idle.map((socket) => closeGently(socket)));
    return idle.length;
  }

  /** Open, connected, and carrying no request: closed gently. */
  private isIdle(socket: Socket): boolean {
    return this.idle.has(socket) && !socket.destroyed && !socket.connecting;
  }

  count(id: string): number {
    return this.bySandbox.get(id)?.size ?? 0;
  }

  /**
   * Ends every connection into the sandbox: idle ones with a FIN, waiting (a while) for their server to
   * close its end; the others with a reset (TCP RST). Resolves once they are gone from its stack.
   */
  async resetAll(id: string): Promise<number> {
    const set = this.bySandbox.get(id);
    if (!set || set.size === 0) return 0;
    this.bySandbox.delete(id);
    const sockets = [...set];
    const gentle = sockets.filter((s) => this.isIdle(s));
    for (const socket of sockets) {
      if (this.isIdle(socket)) continue;
      if (socket.connecting || socket.destroyed) socket.destroy();
      else socket.resetAndDestroy();
    }
    await Promise.all([...gentle.map((socket) => closeGently(socket)), new Promise((r) => setTimeout(r, RESET_SETTLE_MS))]);
    return sockets.length;
  }
}

/** FIN, then waits for the peer's: a peer that does not close within CLOSE_WAIT_MS is reset. */
function closeGently(socket: Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      socket.resetAndDestroy();
      resolve();
    }, CLOSE_WAIT_MS);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.end();
  });
}
