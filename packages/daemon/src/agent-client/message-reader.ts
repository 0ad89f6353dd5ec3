import { FRAME_MARKER, FRAME_PREFIX_BYTES, MAX_FRAME_HEADER, MAX_FRAME_PAYLOAD } from "./agent-protocol.js";

export interface MessageSink {
  /** One message: a JSON line (payload null) or a frame's JSON header and payload. */
  message(body: Buffer, payload: Buffer | null): void;
  /**
   * A line went over the limit and is being dropped (the stream resynchronises at the next newline):
   * said when it does, with `head`, its first bytes, which tell whose reply it was; then again after each
   * further maxLineBytes dropped (with an empty head), so an endless line is seen.
   */
  oversizeLine(bytes: number, head: Buffer): void;
  /** A resync's token was found: the stream is in step again (see skipUntil). */
  synced?(): void;
  /** The stream cannot be followed any more (a frame announced more than the limits); nothing more is read. */
  fatal(reason: string): void;
}

type State = "start" | "line" | "prefix" | "frame";

/** How much of an over-long line is passed on: enough for a reply's `{"id":N,`. */
const LINE_HEAD_BYTES = 64;

/**
 * Splits the agent's output into messages: JSON lines, and binary frames (a NUL byte, two u32 BE
 * lengths, the JSON header, the payload; docs/agent-protocol.md). The stream is untrusted, so what is
 * held is bounded: a line by maxLineBytes, a frame by its limits, checked before anything is allocated.
 * A frame's lengths cannot be checked against anything else, so one over the limits ends the stream.
 */
export class MessageReader {
  private state: State = "start";
  private lineParts: Buffer[] = [];
  private lineLength = 0;
  private discardingLine = false;
  /** Bytes of the over-long line dropped so far, and when to say so next. */
  private discarded = 0;
  private nextReport = 0;
  private readonly prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
  private prefixHave = 0;
  private frame: Buffer | null = null;
  private frameHave = 0;
  private headerBytes = 0;
  private dead = false;
  /** While set: bytes are dropped unread until this sequence, where parsing starts afresh (resync). */
  private hunting: { token: Buffer; tail: Buffer; dropped: number } | null = null;

  /**
   * maxHuntBytes bounds what a resync may drop: past it the stream is not an agent catching up but a flood,
   * and it ends (fatal) rather than costing CPU for as long as the flood lasts.
   */
  constructor(
    private readonly maxLineBytes: number,
    private readonly sink: MessageSink,
    private readonly maxHuntBytes = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Drops everything up to `token` (the start of the message that proves the stream is in step again),
   * whatever state the stream was in: what came before it was written for a previous reader, and may
   * begin or end in the middle of a message.
   */
  skipUntil(token: Buffer): void {
    this.hunting = { token, tail: Buffer.alloc(0), dropped: 0 };
    this.state = "start";
    this.lineParts = [];
    this.lineLength = 0;
    this.discardingLine = false;
    this.prefixHave = 0;
    this.frame = null;
  }

  /** Whether a resync is still dropping what came before its token. */
  get resyncing(): boolean {
    return this.hunting !== null;
  }

  push(chunk: Buffer): void {
    if (this.dead) return;
    if (this.hunting) {
      const hunt = this.hunting;
      const joined = hunt.tail.length > 0 ? Buffer.concat([hunt.tail, chunk]) : chunk;
      const at = joined.indexOf(hunt.token);
      if (at === -1) {
        // The token may straddle two chunks: keep what could be its start.
        hunt.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - hunt.token.length + 1)));
        hunt.dropped += chunk.length;
        if (hunt.dropped > this.maxHuntBytes) {
          this.stop();
          this.sink.fatal(`more than ${Math.round(this.maxHuntBytes / 2 ** 20)} MiB arrived on the agent channel before the agent answered the resync`);
        }
        return;
      }
      this.hunting = null;
      chunk = joined.subarray(at);
      this.sink.synced?.();
    }
    let pos = 0;
    while (pos < chunk.length && !this.dead) {
      switch (this.state) {
        case "start":
          this.state = chunk[pos] === FRAME_MARKER ? "prefix" : "line";
          break;
        case "line":
          pos = this.pushLine(chunk, pos);
          break;
        case "prefix": {
          const n = chunk.copy(this.prefix, this.prefixHave, pos, pos + FRAME_PREFIX_BYTES - this.prefixHave);
          this.prefixHave += n;
          pos += n;
          if (this.prefixHave === FRAME_PREFIX_BYTES) this.startFrame();
          break;
        }
        case "frame": {
          const frame = this.frame!;
          const n = chunk.copy(frame, this.frameHave, pos, pos + frame.length - this.frameHave);
          this.frameHave += n;
          pos += n;
          if (this.frameHave === frame.length) this.endFrame(frame);
          break;
        }
      }
    }
  }

  private pushLine(chunk: Buffer, pos: number): number {
    const nl = chunk.indexOf(10, pos);
    const end = nl === -1 ? chunk.length : nl;
    if (this.discardingLine) {
      this.discarded += end - pos;
      if (this.discarded >= this.nextReport) {
        this.nextReport = this.discarded + this.maxLineBytes;
        this.sink.oversizeLine(this.discarded, Buffer.alloc(0));
      }
    } else if (this.lineLength + end - pos > this.maxLineBytes) {
      this.discardingLine = true;
      this.discarded = this.lineLength + end - pos;
      this.nextReport = this.discarded + this.maxLineBytes;
      const head = Buffer.concat([...this.lineParts, chunk.subarray(pos, end)]).subarray(0, LINE_HEAD_BYTES);
      this.sink.oversizeLine(this.discarded, head);
      this.lineParts = [];
      this.lineLength = 0;
    } else if (end > pos) {
      this.lineParts.push(chunk.subarray(pos, end));
      this.lineLength += end - pos;
    }
    if (nl === -1 || this.dead) return chunk.length;
    const parts = this.lineParts;
    const length = this.lineLength;
    const keep = !this.discardingLine && length > 0;
    this.lineParts = [];
    this.lineLength = 0;
    this.discardingLine = false;
    this.state = "start";
    if (keep) this.sink.message(parts.length === 1 ? parts[0]! : Buffer.concat(parts, length), null);
    return nl + 1;
  }

  /** Reads nothing more (the channel is closed): a garbage stream costs no more CPU. */
  stop(): void {
    this.dead = true;
    this.lineParts = [];
    this.frame = null;
  }

  private startFrame(): void {
    const header = this.prefix.readUInt32BE(1);
    const payload = this.prefix.readUInt32BE(5);
    this.prefixHave = 0;
    if (header === 0 || header > MAX_FRAME_HEADER || payload > MAX_FRAME_PAYLOAD) {
      this.dead = true;
      this.sink.fatal(`the agent announced a frame of ${header} header and ${payload} payload bytes (limits ${MAX_FRAME_HEADER} and ${MAX_FRAME_PAYLOAD})`);
      return;
    }
    this.headerBytes = header;
    // One allocation for header and payload, at most the limits; filled as bytes arrive.
    this.frame = Buffer.allocUnsafe(header + payload);
    this.frameHave = 0;
    this.state = "frame";
  }

  private endFrame(frame: Buffer): void {
    this.frame = null;
    this.state = "start";
    this.sink.message(frame.subarray(0, this.headerBytes), frame.subarray(this.headerBytes));
  }
}
