import type { WatchEvent } from "@stasis/protocol";
import { PTY_WATCH_PROTOCOL, type FsEvent } from "../agent-client/agent-protocol.js";
import { ApiError } from "../errors/api-error.js";
import { requireAgentProtocol } from "./exec-service.js";
import type { SandboxService } from "./sandbox-service.js";

/** Changes kept for a client that reads slowly; beyond, they are counted and reported as `dropped`. */
export const MAX_QUEUED_CHANGES = 10_000;

/**
 * File watches: the agent's inotify watch of a directory, as a stream of changes. Both ends are bounded:
 * the agent drops past its queue (and says how many), and so does this queue when the client falls
 * behind; a client that leaves ends the watch in the agent.
 */
export class WatchService {
  constructor(private readonly sandboxes: SandboxService) {}

  private hibernating(id: string): boolean {
    try {
      const state = this.sandboxes.get(id).state;
      return state === "hibernating" || state === "hibernated";
    } catch {
      return false;
    }
  }

  async *watch(id: string, path: string, recursive: boolean, signal?: AbortSignal): AsyncGenerator<WatchEvent> {
    const live = await this.sandboxes.acquire(id);
    requireAgentProtocol(live, PTY_WATCH_PROTOCOL, "file watches");
    const queue = new ChangeQueue(path);
    const wid = await live.agent.watch(path, recursive);
    const off = live.agent.onWatch(wid, (e) => queue.push(e));
    const onClosed = (reason: string) =>
      queue.fail(
        this.hibernating(id)
          ? new ApiError("sandbox_not_running", "the sandbox hibernated under the watch; watch again once it is awake (changes meanwhile are not reported)")
          : new ApiError("sandbox_failed", `the watch ended: ${reason}`),
      );
    const onAbort = () => queue.fail(new ApiError("invalid_request", "stream aborted by the client"));
    live.agent.once("closed", onClosed);
    signal?.addEventListener("abort", onAbort);
    // An open watch keeps the sandbox from idling into standby, like any open stream.
    const release = this.sandboxes.hold(id);
    try {
      yield { type: "start", path };
      yield* queue.iterate();
    } finally {
      release();
      off();
      live.agent.off("closed", onClosed);
      signal?.removeEventListener("abort", onAbort);
      if (!queue.ended && !live.agent.closed) await live.agent.unwatch(wid).catch(() => {});
    }
  }
}

class ChangeQueue {
  private queue: WatchEvent[] = [];
  private dropped = 0;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  ended = false;

  constructor(private readonly root: string) {}

  push(e: FsEvent): void {
    if (this.ended) return;
    this.dropped += e.dropped ?? 0;
    for (const c of e.events ?? []) {
      if (this.queue.length >= MAX_QUEUED_CHANGES) this.dropped++;
      else this.queue.push({ type: c.op, name: c.name, path: joinPath(this.root, c.name) });
    }
    if (e.end !== undefined) {
      this.ended = true;
      this.queue.push({ type: "end", reason: e.end.slice(0, 4096) });
    }
    this.wake?.();
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.wake?.();
  }

  async *iterate(): AsyncGenerator<WatchEvent> {
    for (;;) {
      // A loss is reported as soon as it is known, ahead of the changes still queued.
      if (this.dropped > 0) {
        const count = this.dropped;
        this.dropped = 0;
        yield { type: "dropped", count };
        continue;
      }
      const next = this.queue.shift();
      if (next) {
        yield next;
        if (next.type === "end") return;
        continue;
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }
}

function joinPath(root: string, name: string): string {
  return root === "/" ? `/${name}` : `${root}/${name}`;
}
