import { createHash, timingSafeEqual } from "node:crypto";
import { posix } from "node:path";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import busboy from "busboy";
import type { Context } from "hono";
import { z } from "zod";
import type { CommandParams, FileInfo, Sandbox, SignalName } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import { byteStream } from "../http/byte-stream.js";
import type { ExecService, OutputEvent } from "../services/exec-service.js";
import type { FileService } from "../services/file-service.js";
import type { SandboxService } from "../services/sandbox-service.js";
import { ConnectError, deadlineMs, streamError, streamRequest, streamResponse, unaryError, unaryRequest, unaryResponse } from "./connect-rpc.js";
import type { E2bAuth } from "./e2b-auth.js";
import { isE2bPaused, isE2bVisible } from "./e2b-sandbox.js";
import type { E2bStore } from "./e2b-store.js";

/** The port envd listens on inside an E2B sandbox: the SDK addresses it in E2b-Sandbox-Port. */
export const ENVD_PORT = "49983";
/**
 * The envd version we answer as. The SDK gates features on it: 0.3.0 stdin flag, 0.4.0 default user,
 * 0.5.2 closeStdin, 0.5.7 octet-stream uploads. 0.6.2 (file metadata) is not implemented, so not claimed.
 */
export const ENVD_VERSION = "0.5.7";
/** E2B's default user; Stasis's base template has it (uid 1000, home /home/user). */
const DEFAULT_USER = "user";
const DEFAULT_KEEPALIVE_S = 50;
const MAX_PATH = 4096;
const PASSWD_CACHE_MS = 30_000;

export interface EnvdDeps {
  sandboxes: SandboxService;
  exec: ExecService;
  files: FileService;
  store: E2bStore;
  auth: E2bAuth;
}

const ProcessSelectorSchema = z.union([z.object({ pid: z.number().int().min(1) }), z.object({ tag: z.string().min(1).max(256) })]);
const UserSchema = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$|^[0-9]{1,10}$/, "not a user name");
const StartRequest = z.object({
  process: z.object({
    cmd: z.string().min(1).max(128 * 1024),
    args: z.array(z.string().max(128 * 1024)).max(4096).default([]),
    envs: z.record(z.string().min(1).max(256), z.string().max(32 * 1024)).default({}),
    cwd: z.string().max(MAX_PATH).optional(),
  }),
  pty: z.unknown().optional(),
  tag: z.string().max(256).optional(),
  stdin: z.boolean().optional(),
});
const ConnectRequest = z.object({ process: ProcessSelectorSchema });
const SendInputRequest = z.object({
  process: ProcessSelectorSchema,
  input: z.union([z.object({ stdin: z.base64().max(2 * 1024 * 1024) }), z.object({ pty: z.string() })]),
});
const SendSignalRequest = z.object({
  process: ProcessSelectorSchema,
  signal: z.union([z.enum(["SIGNAL_SIGTERM", "SIGNAL_SIGKILL"]), z.literal(15), z.literal(9)]),
});
const CloseStdinRequest = z.object({ process: ProcessSelectorSchema });
const PathRequest = z.object({ path: z.string().min(1).max(MAX_PATH) });
const ListDirRequest = z.object({ path: z.string().min(1).max(MAX_PATH), depth: z.number().int().min(0).max(32).default(1) });
const MoveRequest = z.object({ source: z.string().min(1).max(MAX_PATH), destination: z.string().min(1).max(MAX_PATH) });
const FilesQuery = z.object({
  path: z.string().max(MAX_PATH).optional(),
  username: UserSchema.optional(),
  signature: z.string().max(256).optional(),
  signature_expiration: z.string().max(32).optional(),
});

/** What Stasis does not do (yet): each answers with a clear error instead of a silent difference. */
const unsupported: Record<string, string> = {
  "process.Process/Update": "PTY sessions are not supported by Stasis yet (sandbox.pty); use commands",
  "process.Process/StreamInput": "streaming stdin is not supported by Stasis yet; use sendStdin",
  "filesystem.Filesystem/WatchDir": "watching directories (files.watchDir) is not supported by Stasis yet",
  "filesystem.Filesystem/CreateWatcher": "watching directories (files.watchDir) is not supported by Stasis yet",
  "filesystem.Filesystem/GetWatcherEvents": "watching directories (files.watchDir) is not supported by Stasis yet",
  "filesystem.Filesystem/RemoveWatcher": "watching directories (files.watchDir) is not supported by Stasis yet",
};

/**
 * envd, the in-sandbox daemon of E2B, answered by Stasis's own services: process.Process and
 * filesystem.Filesystem over Connect (JSON), /files for uploads and downloads, /health. Requests are
 * routed here by their E2b-Sandbox-Id header; the sandbox's agent does the work, as for Stasis's API.
 */
export class Envd {
  private readonly passwd = new Map<string, { at: number; users: Map<number, string>; groups: Map<number, string> }>();

  constructor(private readonly deps: EnvdDeps) {}

  async handle(c: Context, sandboxId: string, port: string): Promise<Response> {
    if (!this.deps.auth.envdTokenValid(sandboxId, c.req.header("x-access-token"))) {
      return c.json({ code: 401, message: "missing or wrong X-Access-Token for this sandbox: it comes with Sandbox.create() and Sandbox.connect()" }, 401);
    }
    if (port !== ENVD_PORT) {
      return c.json({ code: 501, message: `Stasis does not forward traffic to port ${port} inside sandboxes yet; only envd (port ${ENVD_PORT}) is served` }, 501);
    }
    if (!this.awake(sandboxId)) return sandboxNotFound(c, sandboxId);
    const path = c.req.path;
    if (path === "/health" && c.req.method === "GET") return c.body(null, 204);
    if (path === "/files" && (c.req.method === "GET" || c.req.method === "POST")) return this.files(c, sandboxId);
    const rpc = /^\/((?:process\.Process|filesystem\.Filesystem)\/\w+)$/.exec(path)?.[1];
    if (rpc && c.req.method === "POST") return this.rpc(c, sandboxId, rpc);
    return c.json({ code: 404, message: `envd has no ${c.req.method} ${path}` }, 404);
  }

  /**
   * A signed file URL (`files.downloadUrl` / `uploadUrl`): fetched without routing headers, so the
   * sandbox is the one whose access token produced the signature. The signature covers the path, the
   * operation, the user and the expiry.
   */
  async handleSigned(c: Context): Promise<Response> {
    const q = c.req.query();
    const operation = c.req.method === "GET" ? "read" : c.req.method === "POST" ? "write" : null;
    if (!operation) return c.json({ code: 405, message: "signed file URLs take GET (read) or POST (write)" }, 405);
    const expiration = q.signature_expiration;
    if (expiration !== undefined && !(Number(expiration) * 1000 > Date.now())) return c.json({ code: 401, message: "the signed URL has expired" }, 401);
    const raw = `${q.path ?? ""}:${operation}:${q.username ?? ""}`;
    const given = Buffer.from(q.signature ?? "");
    const signs = (id: string) => {
      const token = this.deps.auth.envdToken(id);
      const digest = createHash("sha256").update(expiration !== undefined ? `${raw}:${token}:${expiration}` : `${raw}:${token}`).digest("base64").replace(/=+$/, "");
      const expected = Buffer.from(`v1_${digest}`);
      return expected.length === given.length && timingSafeEqual(expected, given);
    };
    for (let cursor: string | undefined; ; ) {
      const page = this.deps.sandboxes.list({ limit: 500, ...(cursor ? { cursor } : {}) });
      const match = page.sandboxes.find((s) => signs(s.id));
      if (match) return this.awake(match.id) ? this.files(c, match.id) : sandboxNotFound(c, match.id);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    return c.json({ code: 401, message: "the signature matches no sandbox" }, 401);
  }

  /**
   * Whether the sandbox takes traffic. A sandbox sleeping on its own (idle) is running as far as E2B knows:
   * requests wake it. One paused through E2B (or at its lifetime's end) is paused until connect, unless
   * it was created with autoResume.
   */
  private awake(id: string): boolean {
    const sandbox = this.lookup(id);
    return sandbox !== null && (!isE2bPaused(sandbox) || this.deps.store.autoResume(id));
  }

  private async files(c: Context, id: string): Promise<Response> {
    try {
      return c.req.method === "GET" ? await this.download(c, id) : await this.upload(c, id);
    } catch (err) {
      return filesError(c, err);
    }
  }

  private lookup(id: string): Sandbox | null {
    try {
      const sandbox = this.deps.sandboxes.get(id);
      return isE2bVisible(sandbox) ? sandbox : null;
    } catch (err) {
      if (err instanceof ApiError && err.code === "sandbox_not_found") return null;
      throw err;
    }
  }

  private async rpc(c: Context, id: string, rpc: string): Promise<Response> {
    const message = unsupported[rpc];
    const streaming = rpc === "process.Process/Start" || rpc === "process.Process/Connect" || rpc === "filesystem.Filesystem/WatchDir";
    if (message) return streaming ? streamError(new ConnectError("unimplemented", message)) : unaryError(new ConnectError("unimplemented", message));
    try {
      switch (rpc) {
        case "process.Process/Start":
          return streamResponse(this.start(c, id, await streamRequest(c, StartRequest)));
        case "process.Process/Connect":
          return streamResponse(this.connect(c, id, await streamRequest(c, ConnectRequest)));
        case "process.Process/List":
          return unaryResponse(await this.list(id));
        case "process.Process/SendInput": {
          const req = await unaryRequest(c, SendInputRequest);
          if (!("stdin" in req.input)) throw new ConnectError("unimplemented", "PTY input is not supported by Stasis yet");
          await this.deps.exec.writeStdin(id, await this.pidOf(id, req.process), Buffer.from(req.input.stdin, "base64"), false);
          return unaryResponse({});
        }
        case "process.Process/SendSignal": {
          const req = await unaryRequest(c, SendSignalRequest);
          const signal: SignalName = req.signal === "SIGNAL_SIGKILL" || req.signal === 9 ? "SIGKILL" : "SIGTERM";
          await this.deps.exec.signal(id, await this.pidOf(id, req.process), signal);
          return unaryResponse({});
        }
        case "process.Process/CloseStdin": {
          const req = await unaryRequest(c, CloseStdinRequest);
          await this.deps.exec.writeStdin(id, await this.pidOf(id, req.process), "", true);
          return unaryResponse({});
        }
        case "filesystem.Filesystem/Stat": {
          const { path } = await unaryRequest(c, PathRequest);
          return unaryResponse({ entry: await this.entry(id, await this.deps.files.stat(id, resolvePath(path, userOf(c)))) });
        }
        case "filesystem.Filesystem/MakeDir": {
          const user = userOf(c);
          const path = resolvePath((await unaryRequest(c, PathRequest)).path, user);
          const { created } = await this.deps.files.mkdir(id, path, user);
          if (!created) throw new ConnectError("already_exists", `directory ${path} already exists`);
          return unaryResponse({ entry: await this.entry(id, await this.deps.files.stat(id, path)) });
        }
        case "filesystem.Filesystem/Move": {
          const req = await unaryRequest(c, MoveRequest);
          const user = userOf(c);
          const info = await this.deps.files.move(id, resolvePath(req.source, user), resolvePath(req.destination, user));
          return unaryResponse({ entry: await this.entry(id, info) });
        }
        case "filesystem.Filesystem/ListDir": {
          const req = await unaryRequest(c, ListDirRequest);
          const list = await this.deps.files.list(id, resolvePath(req.path, userOf(c)), Math.max(1, req.depth));
          const entries = [];
          for (const e of list.entries) entries.push(await this.entry(id, e));
          return unaryResponse({ entries });
        }
        case "filesystem.Filesystem/Remove": {
          const { path } = await unaryRequest(c, PathRequest);
          await this.deps.files.remove(id, resolvePath(path, userOf(c)), true);
          return unaryResponse({});
        }
        default:
          throw new ConnectError("unimplemented", `envd has no method ${rpc}`);
      }
    } catch (err) {
      return streaming ? streamError(err) : unaryError(err);
    }
  }

  /** process.Process/Start: runs the process and streams its events; leaving early leaves it running. */
  private async *start(c: Context, id: string, req: z.output<typeof StartRequest>): AsyncGenerator<object> {
    if (req.pty !== undefined) throw new ConnectError("unimplemented", "PTY sessions are not supported by Stasis yet (sandbox.pty); use commands");
    const user = userOf(c);
    const deadline = deadlineMs(c);
    const params: CommandParams = {
      cmd: [req.process.cmd, ...req.process.args],
      env: req.process.envs,
      ...(req.process.cwd ? { cwd: resolvePath(req.process.cwd, user) } : {}),
      user,
      stdin: req.stdin ?? false,
      // E2B's timeoutMs bounds the call, and the process with it: past it, the process is killed.
      timeoutMs: deadline ?? 0,
      ...(req.tag ? { tag: req.tag } : {}),
    };
    const gone = new AbortController();
    // A client leaving keeps the process, unless it leaves because its deadline passed (the SDK aborts
    // on its own clock, racing ours): then the process dies, as on E2B.
    const deadlineAt = deadline ? Date.now() + deadline : Infinity;
    const leaveRunning = () => Date.now() < deadlineAt - 100;
    const events = this.deps.exec.streamBytes(id, params, { signal: gone.signal, leaveRunning });
    yield* withKeepalive(toProcessEvents(events, "the command ran past its timeoutMs and was killed"), keepaliveMs(c), () => gone.abort());
  }

  /** process.Process/Connect: live events of a running process from now on; the deadline ends only the stream. */
  private async *connect(c: Context, id: string, req: z.output<typeof ConnectRequest>): AsyncGenerator<object> {
    const pid = await this.pidOf(id, req.process);
    const deadline = deadlineMs(c);
    const controller = new AbortController();
    let expired = false;
    const timer = deadline
      ? setTimeout(() => {
          expired = true;
          controller.abort();
        }, deadline)
      : null;
    try {
      const events = this.deps.exec.attachBytes(id, pid, false, controller.signal);
      yield* withKeepalive(toProcessEvents(events, null), keepaliveMs(c), () => controller.abort());
    } catch (err) {
      if (expired) throw new ConnectError("deadline_exceeded", "the connection ran past its timeoutMs (the process goes on)");
      throw err;
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private async list(id: string): Promise<object> {
    const processes = (await this.deps.exec.listProcesses(id)).filter((p) => p.running);
    return {
      processes: processes.map((p) => ({
        config: { cmd: p.cmd[0] ?? "", args: p.cmd.slice(1), envs: {}, ...(p.cwd ? { cwd: p.cwd } : {}) },
        pid: p.pid,
        ...(p.tag ? { tag: p.tag } : {}),
      })),
    };
  }

  private async pidOf(id: string, selector: z.output<typeof ProcessSelectorSchema>): Promise<number> {
    if ("pid" in selector) return selector.pid;
    const found = (await this.deps.exec.listProcesses(id)).find((p) => p.running && p.tag === selector.tag);
    if (!found) throw new ConnectError("not_found", `no running process tagged '${selector.tag}'`);
    return found.pid;
  }

  /** GET /files: the file's bytes. */
  private async download(c: Context, id: string): Promise<Response> {
    const q = FilesQuery.safeParse(c.req.query());
    if (!q.success || !q.data.path) return c.json({ code: 400, message: "give the file as ?path=" }, 400);
    const path = resolvePath(q.data.path, q.data.username ?? userOf(c));
    const { size, body } = await this.deps.files.read(id, path);
    return new Response(byteStream(body), {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(size),
        "content-disposition": `attachment; filename="${encodeURIComponent(posix.basename(path))}"`,
      },
    });
  }

  /** POST /files: a multipart form (one part per file, named by its filename or ?path=) or raw bytes. */
  private async upload(c: Context, id: string): Promise<Response> {
    const q = FilesQuery.safeParse(c.req.query());
    if (!q.success) return c.json({ code: 400, message: `invalid query: ${q.error.issues[0]?.message ?? ""}` }, 400);
    const user = q.data.username ?? userOf(c);
    const type = c.req.header("content-type") ?? "";
    let source: Readable = Readable.fromWeb((c.req.raw.body ?? new Blob([]).stream()) as import("node:stream/web").ReadableStream);
    if ((c.req.header("content-encoding") ?? "").toLowerCase() === "gzip") source = source.pipe(createGunzip());
    const written: { path: string; name: string; type: "file" }[] = [];
    const write = async (target: string, data: AsyncIterable<Uint8Array>) => {
      const info = await this.deps.files.write(id, resolvePath(target, user), data, { user });
      written.push({ path: info.path, name: info.name, type: "file" });
    };
    if (type.startsWith("multipart/form-data")) {
      await forEachFilePart(source, type, (filename, data) => {
        const target = q.data.path || filename;
        if (!target) throw new ApiError("invalid_request", "a file part needs ?path= or a filename");
        return write(target, data);
      });
    } else {
      if (!q.data.path) return c.json({ code: 400, message: "give the destination as ?path=" }, 400);
      await write(q.data.path, source);
    }
    if (written.length === 0) return c.json({ code: 400, message: "the form has no file part" }, 400);
    return c.json(written);
  }

  /** Stasis's FileInfo as envd's EntryInfo (enum names, int64 as a string, owner names). */
  private async entry(id: string, info: FileInfo): Promise<object> {
    const names = await this.ownerNames(id);
    const type = info.type === "file" ? "FILE_TYPE_FILE" : info.type === "dir" ? "FILE_TYPE_DIRECTORY" : info.type === "symlink" ? "FILE_TYPE_SYMLINK" : "FILE_TYPE_UNSPECIFIED";
    return {
      name: info.name,
      type,
      path: info.path,
      size: String(info.size),
      mode: info.mode & 0o777,
      permissions: permissionString(info),
      owner: names.users.get(info.uid) ?? String(info.uid),
      group: names.groups.get(info.gid) ?? String(info.gid),
      modifiedTime: info.mtime,
      ...(info.symlinkTarget !== null ? { symlinkTarget: info.symlinkTarget } : {}),
    };
  }

  /** The sandbox's user and group names, read from its /etc/passwd and /etc/group (cached briefly). */
  private async ownerNames(id: string): Promise<{ users: Map<number, string>; groups: Map<number, string> }> {
    const cached = this.passwd.get(id);
    if (cached && Date.now() - cached.at < PASSWD_CACHE_MS) return cached;
    const read = async (path: string): Promise<Map<number, string>> => {
      const names = new Map<number, string>();
      try {
        const { size, body } = await this.deps.files.read(id, path);
        if (size > 1024 * 1024) return names;
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(chunk);
        for (const line of Buffer.concat(chunks).toString("utf8").split("\n")) {
          const [name, , num] = line.split(":");
          if (name && num && /^\d+$/.test(num) && !names.has(Number(num))) names.set(Number(num), name);
        }
      } catch {
        // Numbers instead of names.
      }
      return names;
    };
    const entry = { at: Date.now(), users: await read("/etc/passwd"), groups: await read("/etc/group") };
    if (this.passwd.size > 10_000) this.passwd.clear();
    this.passwd.set(id, entry);
    return entry;
  }
}

/** The exact answer E2B's proxy gives for a sandbox that is gone or paused; `isRunning()` relies on it. */
export function sandboxNotFound(c: Context, sandboxId: string): Response {
  return c.body(JSON.stringify({ message: "The sandbox was not found", sandboxId, code: 502 }), 502, { "content-type": "application/json" });
}

/** The user a request acts as: HTTP Basic `user:` as the SDK sends it, else E2B's default user. */
function userOf(c: Context): string {
  const header = c.req.header("authorization") ?? "";
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/.exec(header);
  if (!m) return DEFAULT_USER;
  const user = Buffer.from(m[1]!, "base64").toString("utf8").split(":")[0] ?? "";
  if (user === "") return DEFAULT_USER;
  if (!UserSchema.safeParse(user).success) throw new ConnectError("invalid_argument", `'${user.slice(0, 40)}' is not a user name`);
  return user;
}

function homeOf(user: string): string {
  return user === "root" || user === "0" ? "/root" : `/home/${user}`;
}

/** envd resolves relative paths (and ~) against the user's home directory. */
export function resolvePath(path: string, user: string): string {
  if (path.includes("\0")) throw new ConnectError("invalid_argument", "paths cannot contain NUL");
  let absolute: string;
  if (path.startsWith("/")) absolute = path;
  else if (path === "~" || path.startsWith("~/")) absolute = homeOf(user) + path.slice(1);
  else absolute = posix.join(homeOf(user), path);
  const normal = posix.normalize(absolute);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

function permissionString(info: FileInfo): string {
  const kind = info.type === "dir" ? "d" : info.type === "symlink" ? "L" : "-";
  const bits = "rwxrwxrwx";
  let out = kind;
  for (let i = 0; i < 9; i++) out += info.mode & (1 << (8 - i)) ? bits[i] : "-";
  return out;
}

function keepaliveMs(c: Context): number {
  const s = Number(c.req.header("keepalive-ping-interval") ?? DEFAULT_KEEPALIVE_S);
  return Math.min(Math.max(Number.isFinite(s) && s > 0 ? s : DEFAULT_KEEPALIVE_S, 1), 300) * 1000;
}

/** Stasis's process events as envd's ProcessEvent messages. */
async function* toProcessEvents(events: AsyncGenerator<OutputEvent>, timeoutMessage: string | null): AsyncGenerator<object> {
  for await (const e of events) {
    if (e.kind === "start") yield { event: { start: { pid: e.pid } } };
    else if (e.kind === "data") yield { event: { data: { [e.fd === 1 ? "stdout" : "stderr"]: e.data.toString("base64") } } };
    else {
      if (e.exit.timedOut && timeoutMessage) throw new ConnectError("deadline_exceeded", timeoutMessage);
      const { exitCode, signal } = e.exit;
      const status = signal ? `signal: ${signal.replace(/^SIG/, "").toLowerCase()}` : `exit status ${exitCode}`;
      yield { event: { end: { exitCode, exited: signal === null, status } } };
    }
  }
}

/**
 * Passes messages through, adding a keepalive whenever none came for `intervalMs`, so that proxies and
 * HTTP clients with idle timeouts keep a quiet command's stream open. `stop` ends the source's wait when
 * the consumer leaves (a generator cannot be returned while it awaits).
 */
async function* withKeepalive(messages: AsyncGenerator<object>, intervalMs: number, stop: () => void): AsyncGenerator<object> {
  let pending: Promise<IteratorResult<object>> | null = null;
  try {
    for (;;) {
      pending ??= messages.next();
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<"tick">((resolve) => (timer = setTimeout(() => resolve("tick"), intervalMs)));
      const next = await Promise.race([pending, tick]);
      clearTimeout(timer);
      if (next === "tick") {
        yield { event: { keepalive: {} } };
        continue;
      }
      pending = null;
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // Finished, or the consumer left (client gone): close the source, which detaches from the process.
    if (pending) {
      void pending.catch(() => {});
      stop();
    }
    await messages.return(undefined);
  }
}

/** Calls `onFile` for each file part of a multipart body, one after another, with backpressure. */
function forEachFilePart(
  source: Readable,
  contentType: string,
  onFile: (filename: string, data: AsyncIterable<Uint8Array>) => Promise<void>,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      // preservePath: the SDK names each part by its full destination path.
      parser = busboy({ headers: { "content-type": contentType }, preservePath: true, limits: { fields: 16, parts: 1024 } });
    } catch (err) {
      reject(new ApiError("invalid_request", `malformed multipart form: ${(err as Error).message}`));
      return;
    }
    let chain = Promise.resolve();
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      source.unpipe(parser);
      source.resume();
      reject(err);
    };
    parser.on("file", (_field, stream, info) => {
      // Each part is written as it arrives; busboy waits for the part's stream to be read.
      chain = chain.then(() => (failed ? stream.resume() && undefined : onFile(info.filename ?? "", stream))).catch((err: unknown) => {
        stream.resume();
        fail(err);
      });
    });
    parser.on("error", (err: Error) => fail(new ApiError("invalid_request", `malformed multipart form: ${err.message}`)));
    parser.on("close", () => {
      chain.then(() => {
        if (!failed) resolve();
      }, fail);
    });
    source.on("error", (err) => fail(new ApiError("invalid_request", `the upload failed: ${err.message}`)));
    source.pipe(parser);
  });
}

/** /files errors as envd's JSON (`{code, message}` with the HTTP status); the SDK maps the status. */
function filesError(c: Context, err: unknown): Response {
  if (err instanceof ConnectError) return c.json({ code: 400, message: err.message }, 400);
  if (!(err instanceof ApiError)) return c.json({ code: 500, message: "internal error; see the daemon log" }, 500);
  const status =
    err.code === "file_not_found" || err.code === "process_not_found"
      ? 404
      : err.code === "payload_too_large"
        ? 507
        : err.code === "permission_denied"
          ? 403
          : err.code === "sandbox_not_running" || err.code === "sandbox_failed"
            ? 502
            : err.status >= 500
              ? err.status
              : 400;
  return c.json({ code: status, message: err.message }, status as 400);
}
