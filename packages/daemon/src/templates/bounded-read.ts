import { constants, type Stats } from "node:fs";
import { lstat, open, stat } from "node:fs/promises";

/** Why a file from an untrusted tree (a layer, an upload, an image) was not read. */
export class BoundedReadError extends Error {
  constructor(
    readonly reason: "missing" | "symlink" | "not_regular" | "too_large",
    readonly limit: number,
  ) {
    super(reason);
  }
}

/**
 * Reads a regular file of at most `limit` bytes from an untrusted tree. Looked at before it is opened
 * (opening a device node has effects of its own, a FIFO blocks), opened non-blocking and, unless
 * `follow`, without following a final symlink, then checked again on what was opened.
 */
export async function readBoundedFile(path: string, limit: number, options: { follow?: boolean } = {}): Promise<Buffer> {
  let first: Stats;
  try {
    first = options.follow ? await stat(path) : await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new BoundedReadError("missing", limit);
    throw err;
  }
  if (first.isSymbolicLink()) throw new BoundedReadError("symlink", limit);
  if (!first.isFile()) throw new BoundedReadError("not_regular", limit);
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | (options.follow ? 0 : constants.O_NOFOLLOW));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new BoundedReadError("missing", limit);
    if (code === "ELOOP") throw new BoundedReadError("symlink", limit);
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new BoundedReadError("not_regular", limit);
    if (st.size > limit) throw new BoundedReadError("too_large", limit);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    // Never more than the size checked, even if the file grows meanwhile.
    while (got < buf.length) {
      const { bytesRead } = await handle.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await handle.close();
  }
}
