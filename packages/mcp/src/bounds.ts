/** What the tools return at most: an agent's context is small, and the daemon-hosted server must bound memory. */
export interface ToolLimits {
  /** Characters of stdout (and of stderr) a command or code run returns: the head and the tail. */
  maxOutputChars: number;
  /** Bytes of a file read_file returns by default (a call may ask for up to maxReadBytesCap; images get the cap). */
  maxReadBytes: number;
  maxReadBytesCap: number;
  /** Entries list_files returns. */
  maxListEntries: number;
  /** Bytes of images (and other rich results) one code run returns, all together. */
  maxResultBytes: number;
}

export const DEFAULT_LIMITS: ToolLimits = {
  maxOutputChars: 32_000,
  maxReadBytes: 256 * 1024,
  maxReadBytesCap: 8 * 1024 * 1024,
  maxListEntries: 500,
  maxResultBytes: 8 * 1024 * 1024,
};

/**
 * Keeps the first and last halves of a text that arrives in pieces, never more than `limit` characters:
 * a command's first lines say what it did, its last lines how it ended.
 */
export class HeadTail {
  private head = "";
  private tail = "";
  private dropped = 0;

  constructor(private readonly limit: number) {}

  push(piece: string): void {
    const half = Math.floor(this.limit / 2);
    if (this.head.length < half) {
      const take = piece.slice(0, half - this.head.length);
      this.head += take;
      piece = piece.slice(take.length);
    }
    if (piece === "") return;
    const joined = this.tail + piece;
    const keep = this.limit - half;
    if (joined.length > keep) {
      this.dropped += joined.length - keep;
      this.tail = joined.slice(joined.length - keep);
    } else this.tail = joined;
  }

  get truncated(): boolean {
    return this.dropped > 0;
  }

  /** The kept text, with a note where characters were left out. */
  text(): string {
    if (this.dropped === 0) return this.head + this.tail;
    return `${this.head}\n[... ${this.dropped} characters left out: the output exceeded ${this.limit} characters ...]\n${this.tail}`;
  }
}

/** One text bounded at once (as HeadTail, for text that is already whole). */
export function boundText(text: string, limit: number): { text: string; truncated: boolean } {
  const bounded = new HeadTail(limit);
  bounded.push(text);
  return { text: bounded.text(), truncated: bounded.truncated };
}

/**
 * Reads at most `limit` bytes of a stream, then cancels it (the rest never crosses the wire). A function
 * limit is decided by the first chunk (an image may be larger than text).
 */
export async function readUpTo(stream: ReadableStream<Uint8Array>, limit: number | ((first: Uint8Array) => number)): Promise<{ bytes: Uint8Array; cut: boolean }> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let cut = false;
  let bound = typeof limit === "number" ? limit : Infinity;
  try {
    while (size < bound) {
      const { done, value } = await reader.read();
      if (done) break;
      if (typeof limit === "function" && chunks.length === 0) bound = limit(value);
      chunks.push(value);
      size += value.length;
    }
    if (size >= bound) cut = size > bound || !(await reader.read()).done;
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return { bytes: all.subarray(0, Math.min(size, bound)), cut };
}
