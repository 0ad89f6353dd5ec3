// envd's directory watches: WatchDir (a server stream, the JS SDK's files.watchDir) and the polling
// CreateWatcher / GetWatcherEvents / RemoveWatcher (the Python SDK's), over Stasis's watch service.
import { randomUUID } from "node:crypto";
import type { Context } from "hono";
import { z } from "zod";
import type { WatchEvent } from "@stasis/protocol";
import type { WatchService } from "../../services/watch-service.js";
import { ConnectError, deadlineMs, streamRequest, streamResponse, unaryRequest, unaryResponse } from "../connect-rpc.js";
import { MAX_PATH, resolvePath, userOf } from "./envd-user.js";

const WatchRequest = z.object({ path: z.string().min(1).max(MAX_PATH), recursive: z.boolean().default(false) });
const WatcherRequest = z.object({ watcherId: z.string().min(1).max(64) });

/** envd's EventType names, by Stasis's change types. */
const eventTypes = { create: "EVENT_TYPE_CREATE", write: "EVENT_TYPE_WRITE", remove: "EVENT_TYPE_REMOVE", rename: "EVENT_TYPE_RENAME", chmod: "EVENT_TYPE_CHMOD" } as const;
/** Polled watchers: at most this many at once, their unpolled changes bounded, forgotten when not polled. */
const MAX_WATCHERS = 256;
const MAX_WATCHER_EVENTS = 10_000;
const WATCHER_IDLE_MS = 10 * 60_000;
const KEEPALIVE_MS = 50_000;

type FsEventMessage = { name: string; type: (typeof eventTypes)[keyof typeof eventTypes] };

function toFilesystemEvent(e: WatchEvent): FsEventMessage | null {
  return e.type in eventTypes && "name" in e ? { name: e.name, type: eventTypes[e.type as keyof typeof eventTypes] } : null;
}

interface Watcher {
  sandboxId: string;
  events: FsEventMessage[];
  failure: unknown;
  stop: AbortController;
  idle: NodeJS.Timeout;
}

export class EnvdWatches {
  private readonly watchers = new Map<string, Watcher>();

  constructor(private readonly watch: WatchService) {}

  static handles(rpc: string): boolean {
    return /^filesystem\.Filesystem\/(WatchDir|CreateWatcher|GetWatcherEvents|RemoveWatcher)$/.test(rpc);
  }

  async call(c: Context, id: string, rpc: string): Promise<Response> {
    switch (rpc) {
      case "filesystem.Filesystem/WatchDir": {
        const req = await streamRequest(c, WatchRequest);
        return streamResponse(this.stream(c, id, resolvePath(req.path, userOf(c)), req.recursive));
      }
      case "filesystem.Filesystem/CreateWatcher": {
        const req = await unaryRequest(c, WatchRequest);
        return unaryResponse({ watcherId: await this.create(id, resolvePath(req.path, userOf(c)), req.recursive) });
      }
      case "filesystem.Filesystem/GetWatcherEvents": {
        const w = this.watcher(id, (await unaryRequest(c, WatcherRequest)).watcherId);
        w.idle.refresh();
        const events = w.events.splice(0);
        if (events.length === 0 && w.failure) throw w.failure;
        return unaryResponse({ events });
      }
      case "filesystem.Filesystem/RemoveWatcher": {
        const { watcherId } = await unaryRequest(c, WatcherRequest);
        this.watcher(id, watcherId);
        this.remove(watcherId);
        return unaryResponse({});
      }
      default:
        throw new ConnectError("unimplemented", `envd has no method ${rpc}`);
    }
  }

  /** WatchDir: `start` once the watch is in place, then changes, keepalives on quiet streams; the deadline ends it. */
  private async *stream(c: Context, id: string, path: string, recursive: boolean): AsyncGenerator<object> {
    const deadline = deadlineMs(c);
    const stop = new AbortController();
    const timer = deadline ? setTimeout(() => stop.abort(), deadline) : null;
    const events = this.watch.watch(id, path, recursive, stop.signal);
    let pending: Promise<IteratorResult<WatchEvent>> | null = null;
    try {
      for (;;) {
        pending ??= events.next();
        let tick: NodeJS.Timeout | undefined;
        const next = await Promise.race([pending, new Promise<"tick">((r) => (tick = setTimeout(() => r("tick"), KEEPALIVE_MS)))]);
        clearTimeout(tick);
        if (next === "tick") {
          yield { keepalive: {} };
          continue;
        }
        pending = null;
        if (next.done || next.value.type === "end") return;
        // WatchDirResponse's oneof is its own top level (unlike ProcessEvent, wrapped in `event`).
        if (next.value.type === "start") yield { start: {} };
        const change = toFilesystemEvent(next.value);
        if (change) yield { filesystem: change };
      }
    } catch (err) {
      if (stop.signal.aborted) throw new ConnectError("deadline_exceeded", "the watch ran past its timeoutMs");
      throw err;
    } finally {
      if (timer) clearTimeout(timer);
      if (pending) {
        void pending.catch(() => {});
        stop.abort();
      }
      await events.return(undefined);
    }
  }

  private async create(id: string, path: string, recursive: boolean): Promise<string> {
    if (this.watchers.size >= MAX_WATCHERS) throw new ConnectError("resource_exhausted", `at most ${MAX_WATCHERS} watchers at once; remove some`);
    const stop = new AbortController();
    const events = this.watch.watch(id, path, recursive, stop.signal);
    await events.next(); // the start: errors (no such directory) are this call's
    const watcherId = randomUUID();
    const idle = setTimeout(() => this.remove(watcherId), WATCHER_IDLE_MS).unref();
    const w: Watcher = { sandboxId: id, events: [], failure: null, stop, idle };
    this.watchers.set(watcherId, w);
    void (async () => {
      try {
        for await (const e of events) {
          const change = toFilesystemEvent(e);
          // Past the bound, changes are lost: envd's events have no way to say so.
          if (change && w.events.length < MAX_WATCHER_EVENTS) w.events.push(change);
        }
      } catch (err) {
        if (!stop.signal.aborted) w.failure = err;
      }
    })();
    return watcherId;
  }

  private watcher(id: string, watcherId: string): Watcher {
    const w = this.watchers.get(watcherId);
    if (!w || w.sandboxId !== id) throw new ConnectError("not_found", `no watcher ${watcherId}`);
    return w;
  }

  private remove(watcherId: string): void {
    const w = this.watchers.get(watcherId);
    if (!w) return;
    this.watchers.delete(watcherId);
    clearTimeout(w.idle);
    w.stop.abort();
  }
}
