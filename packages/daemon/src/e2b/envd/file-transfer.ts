// envd's /files: downloads, and uploads as raw bytes or multipart forms (gzip allowed), with envd's errors.
import { posix } from "node:path";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import busboy from "busboy";
import type { Context } from "hono";
import { z } from "zod";
import { ApiError } from "../../errors/api-error.js";
import { byteStream } from "../../http/byte-stream.js";
import type { FileService } from "../../services/file-service.js";
import { ConnectError } from "../connect-rpc.js";
import { MAX_PATH, resolvePath, UserSchema, userOf } from "./envd-user.js";

/** A part without a filename is buffered whole (busboy gives it as a field): it is kept small. */
const MAX_FIELD_FILE_BYTES = 2 * 1024 * 1024;

const FilesQuery = z.object({
  path: z.string().max(MAX_PATH).optional(),
  username: UserSchema.optional(),
  signature: z.string().max(256).optional(),
  signature_expiration: z.string().max(32).optional(),
});

/** GET /files (download) and POST /files (upload) of sandbox `id`; errors answered as envd answers them. */
export async function transferFiles(files: FileService, c: Context, id: string): Promise<Response> {
  try {
    return c.req.method === "GET" ? await download(files, c, id) : await upload(files, c, id);
  } catch (err) {
    return filesError(c, err);
  }
}

/** GET /files: the file's bytes. */
async function download(files: FileService, c: Context, id: string): Promise<Response> {
  const q = FilesQuery.safeParse(c.req.query());
  if (!q.success || !q.data.path) return c.json({ code: 400, message: "give the file as ?path=" }, 400);
  const path = resolvePath(q.data.path, q.data.username ?? userOf(c));
  const { size, body } = await files.read(id, path);
  return new Response(byteStream(body), {
    headers: {
      "content-type": "application/octet-stream",
      "content-length": String(size),
      "content-disposition": `attachment; filename="${encodeURIComponent(posix.basename(path))}"`,
    },
  });
}

/** POST /files: a multipart form (one part per file, named by its filename or ?path=) or raw bytes. */
async function upload(files: FileService, c: Context, id: string): Promise<Response> {
  const q = FilesQuery.safeParse(c.req.query());
  if (!q.success) return c.json({ code: 400, message: `invalid query: ${q.error.issues[0]?.message ?? ""}` }, 400);
  const user = q.data.username ?? userOf(c);
  const type = c.req.header("content-type") ?? "";
  let source: Readable = Readable.fromWeb((c.req.raw.body ?? new Blob([]).stream()) as import("node:stream/web").ReadableStream);
  if ((c.req.header("content-encoding") ?? "").toLowerCase() === "gzip") source = source.pipe(createGunzip());
  const written: { path: string; name: string; type: "file" }[] = [];
  const write = async (target: string, data: AsyncIterable<Uint8Array>) => {
    const info = await files.write(id, resolvePath(target, user), data, { user });
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

/**
 * A text field's bytes. Without a declared charset busboy decodes it as latin1 (defCharset), which gives
 * the bytes back exactly; a part that declares another charset was decoded with it, and characters beyond
 * latin1 show it was: such text goes back as UTF-8.
 */
function fieldBytes(value: string): Buffer {
  return Buffer.from(value, /[^\u0000-\u00ff]/.test(value) ? "utf8" : "latin1");
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
      // preservePath: the SDK names each part by its full destination path. latin1: a part without a
      // filename arrives as a text field, whose bytes latin1 gives back exactly.
      parser = busboy({
        headers: { "content-type": contentType },
        preservePath: true,
        defCharset: "latin1",
        limits: { fields: 8, fieldSize: MAX_FIELD_FILE_BYTES, parts: 1024 },
      });
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
    // envd writes every part named "file", filename or not (the path then comes from ?path=); busboy
    // hands one without a filename over as a field, held in memory, hence its smaller limit.
    parser.on("field", (field, value, info) => {
      if (field !== "file") return;
      chain = chain
        .then(() => {
          if (failed) return undefined;
          if (info.valueTruncated) throw new ApiError("payload_too_large", `a form part without a filename holds at most ${MAX_FIELD_FILE_BYTES} bytes: give it a filename or upload application/octet-stream`);
          return onFile("", Readable.from([fieldBytes(value)]));
        })
        .catch(fail);
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
