import { ListQuerySchema, MkdirRequestSchema, MoveRequestSchema, PathQuerySchema, RemoveQuerySchema, WriteQuerySchema } from "@stasis/protocol";
import type { Handler } from "../handler.js";
import { requestBody } from "../request-body.js";
import { ApiError } from "../../errors/api-error.js";
import { byteStream } from "../byte-stream.js";
import { jsonBody, query } from "../validation.js";

export const fileHandlers = {
  readFile: async (c, s) => {
    const { path } = query(c, PathQuerySchema);
    const { size, body } = await s.files.read(c.req.param("id") ?? "", path);
    return new Response(byteStream(body), { headers: { "content-type": "application/octet-stream", "x-file-size": String(size) } });
  },
  writeFile: async (c, s) => {
    const q = query(c, WriteQuerySchema);
    // The body is the file, whatever it is labelled (curl --data-binary says form-urlencoded); only a
    // multipart form would wrap the bytes in something else.
    const type = c.req.header("content-type") ?? "application/octet-stream";
    if (type.startsWith("multipart/")) {
      throw new ApiError("unsupported_media_type", "send the file as the raw request body (application/octet-stream), not a multipart form");
    }
    const source = requestBody(c);
    const info = await s.files.write(c.req.param("id") ?? "", q.path, source, {
      ...(q.mode ? { mode: parseInt(q.mode, 8) } : {}),
      ...(q.user ? { user: q.user } : {}),
    });
    return c.json(info);
  },
  removeFile: async (c, s) => {
    const q = query(c, RemoveQuerySchema);
    await s.files.remove(c.req.param("id") ?? "", q.path, q.recursive);
    return c.body(null, 204);
  },
  statFile: async (c, s) => c.json(await s.files.stat(c.req.param("id") ?? "", query(c, PathQuerySchema).path)),
  listFiles: async (c, s) => {
    const q = query(c, ListQuerySchema);
    return c.json(await s.files.list(c.req.param("id") ?? "", q.path, q.depth));
  },
  makeDir: async (c, s) => {
    const body = await jsonBody(c, MkdirRequestSchema);
    return c.json(await s.files.mkdir(c.req.param("id") ?? "", body.path, body.user));
  },
  moveFile: async (c, s) => {
    const body = await jsonBody(c, MoveRequestSchema);
    return c.json(await s.files.move(c.req.param("id") ?? "", body.from, body.to));
  },
} satisfies Record<string, Handler>;
