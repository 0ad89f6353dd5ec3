import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

export interface Session {
  server: McpServer;
  transport: StreamableHTTPServerTransport;
  lastUsed: number;
}

/**
 * MCP sessions of the HTTP endpoint. A session is what lets a client's cancel notification reach the call
 * it cancels (it arrives in a request of its own), so sessions are kept, but bounded: at most `max`, the
 * least recently used dropped beyond that, and any idle for `idleMs` closed by the sweep. A dropped
 * session's client gets 404 and initializes again, as the spec has it.
 */
export class Sessions {
  private readonly sessions = new Map<string, Session>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly max: number,
    private readonly idleMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.sweep = setInterval(() => this.closeIdle(), Math.max(1000, Math.min(idleMs, 60_000)));
    this.sweep.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  get(id: string): Session | undefined {
    const session = this.sessions.get(id);
    if (session) {
      session.lastUsed = this.now();
      // Map order is use order: the first entry is the least recently used.
      this.sessions.delete(id);
      this.sessions.set(id, session);
    }
    return session;
  }

  add(id: string, session: Omit<Session, "lastUsed">): void {
    this.sessions.set(id, { ...session, lastUsed: this.now() });
    while (this.sessions.size > this.max) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.drop(oldest);
    }
  }

  /** Forgets a session and closes it (aborting its calls in flight). */
  drop(id: string): void {
    const session = this.sessions.get(id);
    if (!session) return;
    this.sessions.delete(id);
    void session.server.close().catch(() => undefined);
  }

  closeIdle(): void {
    const oldest = this.now() - this.idleMs;
    for (const [id, session] of this.sessions) if (session.lastUsed < oldest) this.drop(id);
  }

  close(): void {
    clearInterval(this.sweep);
    for (const id of [...this.sessions.keys()]) this.drop(id);
  }
}
