import { createHash, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import type { Sandbox } from "@stasis/protocol";
import { ApiError } from "../errors/api-error.js";
import type { ExecService } from "../services/exec-service.js";
import type { FileService } from "../services/file-service.js";
import type { PtyService } from "../services/pty-service.js";
import type { WatchService } from "../services/watch-service.js";
import type { SandboxService } from "../services/sandbox-service.js";
import { ConnectError, streamError, unaryError } from "./connect-rpc.js";
import type { E2bAuth } from "./e2b-auth.js";
import { isE2bPaused, isE2bVisible } from "./e2b-sandbox.js";
import type { E2bStore } from "./e2b-store.js";
import { transferFiles } from "./envd/file-transfer.js";
import { EnvdFilesystem } from "./envd/filesystem-rpc.js";
import { EnvdProcesses } from "./envd/process-rpc.js";
import { EnvdWatches } from "./envd/watch-rpc.js";

export { resolvePath } from "./envd/envd-user.js";

/** The port envd listens on inside an E2B sandbox: the SDK addresses it in E2b-Sandbox-Port. */
export const ENVD_PORT = "49983";
/**
 * The envd version we answer as. The SDK gates features on it: 0.3.0 stdin flag, 0.4.0 default user,
 * 0.5.2 closeStdin, 0.5.7 octet-stream uploads. 0.6.2 (file metadata) is not implemented, so not claimed.
 */
export const ENVD_VERSION = "0.5.7";

export interface EnvdDeps {
  sandboxes: SandboxService;
  exec: ExecService;
  files: FileService;
  pty: PtyService;
  watch: WatchService;
  store: E2bStore;
  auth: E2bAuth;
}

/** What Stasis does not do (yet): each answers with a clear error instead of a silent difference. */
const unsupported: Record<string, string> = {
  "process.Process/StreamInput": "streaming stdin is not supported by Stasis yet; use sendStdin",
};

/**
 * envd, the in-sandbox daemon of E2B, answered by Stasis's own services: process.Process and
 * filesystem.Filesystem over Connect (JSON), /files for uploads and downloads, /health. Requests are
 * routed here by their E2b-Sandbox-Id header; the sandbox's agent does the work, as for Stasis's API.
 */
export class Envd {
  private readonly processes: EnvdProcesses;
  private readonly filesystem: EnvdFilesystem;
  private readonly watches: EnvdWatches;

  constructor(private readonly deps: EnvdDeps) {
    this.processes = new EnvdProcesses(deps.exec, deps.pty, (id) => this.lookup(id) === null);
    this.filesystem = new EnvdFilesystem(deps.files);
    this.watches = new EnvdWatches(deps.watch);
  }

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
      if (match) {
        // envd's order and words: the signature first, then its expiry (valid through its last second).
        if (expiration !== undefined && Number(expiration) < Math.floor(Date.now() / 1000)) return c.json({ code: 401, message: "signature is already expired" }, 401);
        return this.awake(match.id) ? this.files(c, match.id) : sandboxNotFound(c, match.id);
      }
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    return c.json({ code: 401, message: "invalid signature" }, 401);
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

  private files(c: Context, id: string): Promise<Response> {
    return transferFiles(this.deps.files, c, id);
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
      if (rpc.startsWith("process.Process/")) return await this.processes.call(c, id, rpc);
      return await (EnvdWatches.handles(rpc) ? this.watches.call(c, id, rpc) : this.filesystem.call(c, id, rpc));
    } catch (err) {
      return streaming ? streamError(err) : unaryError(err);
    }
  }
}

/** The exact answer E2B's proxy gives for a sandbox that is gone or paused; `isRunning()` relies on it. */
export function sandboxNotFound(c: Context, sandboxId: string): Response {
  return c.body(JSON.stringify({ message: "The sandbox was not found", sandboxId, code: 502 }), 502, { "content-type": "application/json" });
}
