import { CreatePtyRequestSchema, PidParamSchema, PtySizeSchema, WatchQuerySchema } from "@stasis/protocol";
import type { Context } from "hono";
import { ApiError } from "../../errors/api-error.js";
import { MAX_PTY_INPUT_BYTES } from "../../services/pty-service.js";
import type { Handler } from "../handler.js";
import { ndjsonResponse } from "../ndjson.js";
import { clientGone, jsonBody, parseWith, query, readBody } from "../validation.js";

function target(c: Context): { id: string; pid: number } {
  return parseWith(PidParamSchema, c.req.param(), "path");
}

/** Terminals (the WebSocket itself is served by http/pty-socket.ts, on the server's upgrade) and file watches. */
export const ptyHandlers = {
  createPty: async (c, s) => {
    const params = await jsonBody(c, CreatePtyRequestSchema);
    return c.json(await s.pty.start(c.req.param("id") ?? "", params), 201);
  },
  connectPty: () => {
    throw new ApiError("invalid_request", "this route is a WebSocket: send `Connection: Upgrade` and `Upgrade: websocket`");
  },
  ptyInput: async (c, s) => {
    const { id, pid } = target(c);
    await s.pty.input(id, pid, await readBody(c, MAX_PTY_INPUT_BYTES));
    return c.body(null, 204);
  },
  resizePty: async (c, s) => {
    const { id, pid } = target(c);
    const { cols, rows } = await jsonBody(c, PtySizeSchema);
    await s.pty.resize(id, pid, cols, rows);
    return c.body(null, 204);
  },
  watchFiles: async (c, s) => {
    const { path, recursive } = query(c, WatchQuerySchema);
    return ndjsonResponse(s.watch.watch(c.req.param("id") ?? "", path, recursive, clientGone(c)), c.get("requestId"));
  },
} satisfies Record<string, Handler>;
