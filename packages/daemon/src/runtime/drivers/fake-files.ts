/** An error the fake agent answers with its protocol code. */
export class AgentError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Message = Record<string, unknown>;
type Entry = { type: "file" | "dir"; data: Buffer; mode: number; mtimeMs: number };

/**
 * The fake agent's file ops over an in-memory tree, with the real agent's error codes for the common
 * cases (missing path, a file where a directory is needed, a non-empty directory): enough for the HTTP
 * layer's tests to reach the agent with any request.
 */
export class FakeFiles {
  private readonly tree = new Map<string, Entry>([["/", dir()]]);
  private readonly handles = new Map<string, { path: string; data: Buffer[]; mode: number }>();
  private lastHandle = 0;

  /** Answers a file op, or returns null for any other op. */
  handle(op: string, msg: Message): Message | null {
    switch (op) {
      case "stat":
        return this.describe(this.path(msg, "path"));
      case "list": {
        const root = this.path(msg, "path");
        if (this.get(root).type !== "dir") throw new AgentError("not_a_directory", `${root} is not a directory`);
        const prefix = root === "/" ? "/" : `${root}/`;
        const entries = [...this.tree.keys()].filter((p) => p !== root && p.startsWith(prefix) && !p.slice(prefix.length).includes("/")).sort();
        return { entries: entries.map((p) => this.describe(p)), truncated: false };
      }
      case "mkdir": {
        const path = this.path(msg, "path");
        const existing = this.tree.get(path);
        if (existing) {
          if (existing.type !== "dir") throw new AgentError("already_exists", `${path} exists and is not a directory`);
          return { created: false };
        }
        this.parents(path);
        this.tree.set(path, dir());
        return { created: true };
      }
      case "move": {
        const from = this.path(msg, "from");
        const to = this.path(msg, "to");
        if (from === "/" || to === "/") throw new AgentError("invalid_argument", "cannot move /");
        this.get(from);
        this.dirOf(to);
        for (const [p, e] of [...this.tree]) {
          if (p === from || p.startsWith(`${from}/`)) {
            this.tree.delete(p);
            this.tree.set(to + p.slice(from.length), e);
          }
        }
        return {};
      }
      case "remove": {
        const path = this.path(msg, "path");
        if (path === "/") throw new AgentError("invalid_argument", "refusing to remove /");
        this.get(path);
        const children = [...this.tree.keys()].filter((p) => p.startsWith(`${path}/`));
        if (children.length > 0 && msg.recursive !== true) throw new AgentError("not_empty", `${path} is not empty`);
        for (const p of [path, ...children]) this.tree.delete(p);
        return {};
      }
      case "read": {
        const path = this.path(msg, "path");
        const e = this.get(path);
        if (e.type === "dir") throw new AgentError("is_a_directory", `${path} is a directory`);
        const offset = typeof msg.offset === "number" ? msg.offset : 0;
        const length = typeof msg.length === "number" ? msg.length : 1024 * 1024;
        if (offset < 0 || length < 0) throw new AgentError("invalid_argument", "offset and length must not be negative");
        const data = e.data.subarray(offset, offset + length);
        return { data: data.toString("base64"), eof: offset + data.length >= e.data.length, size: e.data.length };
      }
      case "write_open": {
        const path = this.path(msg, "path");
        if (this.tree.get(path)?.type === "dir") throw new AgentError("is_a_directory", `${path} is a directory`);
        if (msg.parents !== false) this.parents(path);
        else this.dirOf(path);
        const handle = `h${++this.lastHandle}`;
        this.handles.set(handle, { path, data: [], mode: typeof msg.mode === "number" ? msg.mode : 0o644 });
        return { handle };
      }
      case "write_chunk":
        this.open(msg).data.push(Buffer.from(typeof msg.data === "string" ? msg.data : "", "base64"));
        return {};
      case "write_close": {
        const h = this.open(msg);
        this.handles.delete(msg.handle as string);
        this.tree.set(h.path, { type: "file", data: Buffer.concat(h.data), mode: h.mode, mtimeMs: Date.now() });
        return this.describe(h.path);
      }
      case "write_abort":
        this.open(msg);
        this.handles.delete(msg.handle as string);
        return {};
      default:
        return null;
    }
  }

  private path(msg: Message, key: string): string {
    const v = msg[key];
    if (typeof v !== "string" || !v.startsWith("/") || v.includes("\0")) throw new AgentError("invalid_argument", `${key} must be an absolute path`);
    const parts: string[] = [];
    for (const part of v.split("/")) {
      if (part === "..") parts.pop();
      else if (part !== "" && part !== ".") parts.push(part);
    }
    if (parts.some((p) => Buffer.byteLength(p) > 255)) throw new AgentError("name_too_long", `${v}: file name too long`);
    return `/${parts.join("/")}`;
  }

  private get(path: string): Entry {
    const e = this.tree.get(path);
    if (!e) throw new AgentError("not_found", `${path}: no such file or directory`);
    return e;
  }

  private dirOf(path: string): void {
    const parent = path.slice(0, path.lastIndexOf("/")) || "/";
    if (this.get(parent).type !== "dir") throw new AgentError("not_a_directory", `${parent} is not a directory`);
  }

  private parents(path: string): void {
    let at = "";
    for (const part of path.split("/").slice(1, -1)) {
      at += `/${part}`;
      const e = this.tree.get(at);
      if (!e) this.tree.set(at, dir());
      else if (e.type !== "dir") throw new AgentError("not_a_directory", `${at} is not a directory`);
    }
  }

  private open(msg: Message): { path: string; data: Buffer[]; mode: number } {
    const h = typeof msg.handle === "string" ? this.handles.get(msg.handle) : undefined;
    if (!h) throw new AgentError("not_found", `no open write handle ${String(msg.handle)}`);
    return h;
  }

  private describe(path: string): Message {
    const e = this.get(path);
    return { name: path.slice(path.lastIndexOf("/") + 1) || "/", path, type: e.type, size: e.data.length, mode: e.mode, mtimeMs: e.mtimeMs, uid: 0, gid: 0 };
  }
}

function dir(): Entry {
  return { type: "dir", data: Buffer.alloc(0), mode: 0o755, mtimeMs: Date.now() };
}
