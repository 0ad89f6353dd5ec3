import { ApiError } from "../errors/api-error.js";
import { crashPoint } from "../runtime/crash-point.js";
import type { AgentClient } from "./agent-client.js";
import { MAX_SENT_PAYLOAD, type AgentStat, type ReadResult } from "./agent-protocol.js";

/**
 * Chunk size and chunks in flight per transfer. Pipelining keeps the channel busy instead of paying a
 * round trip per chunk; the agent runs reads concurrently and writes of one handle in arrival order.
 * Frames (protocol 2) carry raw bytes; lines (protocol 1) base64, at most 1 MiB decoded.
 */
export const TRANSFER = {
  frames: { chunkBytes: MAX_SENT_PAYLOAD, window: 8 },
  lines: { chunkBytes: 512 * 1024, window: 4 },
};

export type WriteFileOptions = { mode?: number; user?: string; maxBytes: number };

function shape(agent: AgentClient): { chunkBytes: number; window: number } {
  return agent.framed ? TRANSFER.frames : TRANSFER.lines;
}

/**
 * Reads a file's first chunk, then returns its size and a stream of all of it. Done before a reply's
 * headers are sent: a path that cannot be read (missing, a symlink loop, a directory, a FIFO or a device)
 * then fails as an error reply, never as a 200 whose body aborts. The agent follows a final symlink, so
 * the size is the target's.
 */
export async function openFile(agent: AgentClient, path: string): Promise<{ size: number; body: AsyncGenerator<Buffer> }> {
  const first = await agent.read({ path, offset: 0, length: shape(agent).chunkBytes });
  return { size: first.size, body: readFileChunks(agent, path, first.size, first) };
}

/**
 * Streams a file in order, after `first` (the chunk at offset 0) when given. Reads run ahead within the
 * size a stat saw; beyond it (a file that grew, or one such as /proc's that reports size 0) one chunk at
 * a time, until the agent says eof.
 */
export async function* readFileChunks(agent: AgentClient, path: string, size: number, first?: ReadResult): AsyncGenerator<Buffer> {
  const { chunkBytes, window } = shape(agent);
  const inflight: { offset: number; reply: Promise<ReadResult> }[] = [];
  let next = 0;
  if (first) {
    if (first.data.length > 0) yield first.data;
    if (first.eof || first.data.length === 0) return;
    next = first.data.length;
  }
  const issue = () => {
    const reply = agent.read({ path, offset: next, length: chunkBytes });
    // Awaited in order below; a failure is seen there, not as an unhandled rejection.
    reply.catch(() => {});
    inflight.push({ offset: next, reply });
    next += chunkBytes;
  };
  for (;;) {
    while (inflight.length < window && (inflight.length === 0 || next < size)) issue();
    const head = inflight.shift()!;
    const r = await head.reply;
    if (r.data.length > 0) yield r.data;
    if (r.eof || r.data.length === 0) return;
    if (r.data.length < chunkBytes) {
      // A short read before eof: the reads queued behind it would leave a gap; go on from here.
      inflight.length = 0;
      next = head.offset + r.data.length;
    }
  }
}

/** Writes a file atomically through a write handle; any failure (or too many bytes) aborts it, keeping the old file. */
export async function writeFileFrom(agent: AgentClient, path: string, source: AsyncIterable<Uint8Array>, options: WriteFileOptions): Promise<AgentStat> {
  const handle = await agent.writeOpen({
    path,
    ...(options.mode !== undefined ? { mode: options.mode } : {}),
    ...(options.user ? { user: options.user } : {}),
    parents: true,
  });
  const { chunkBytes, window } = shape(agent);
  const inflight: Promise<void>[] = [];
  // Chunk buffers are reused once the agent has answered their chunk (it has then read every byte, so the
  // socket is done with them): a fresh 1 MiB buffer per chunk made V8 collect garbage several times per
  // 100 MiB (external memory pressure), a third of the daemon's CPU for an upload.
  const spare: Buffer[] = [];
  let buf: Buffer = Buffer.allocUnsafe(chunkBytes);
  let fill = 0;
  let total = 0;
  let sent = 0;
  const flush = async () => {
    if (fill === 0) return;
    if (inflight.length >= window) await inflight.shift();
    const full = buf;
    const chunk = agent.writeChunk(handle, full.subarray(0, fill)).then(() => {
      spare.push(full);
    });
    chunk.catch(() => {});
    inflight.push(chunk);
    // (The crash suite's point: part of the file has reached the agent, the rest has not.)
    if (++sent === 2) crashPoint("upload.partial");
    buf = spare.pop() ?? Buffer.allocUnsafe(chunkBytes);
    fill = 0;
  };
  try {
    for await (const chunk of source) {
      total += chunk.length;
      if (total > options.maxBytes) throw new ApiError("payload_too_large", `file exceeds the ${options.maxBytes}-byte upload limit`);
      for (let off = 0; off < chunk.length; ) {
        const n = Math.min(chunk.length - off, chunkBytes - fill);
        buf.set(chunk.subarray(off, off + n), fill);
        fill += n;
        off += n;
        if (fill === chunkBytes) await flush();
      }
    }
    await flush();
    await Promise.all(inflight);
    // The file as written (not a later stat: a process in the sandbox may consume it at once).
    return await agent.writeClose(handle);
  } catch (err) {
    await agent.writeAbort(handle).catch(() => {});
    throw err;
  }
}
