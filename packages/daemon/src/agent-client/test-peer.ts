import { PassThrough } from "node:stream";
import pino from "pino";
import { AgentClient } from "./agent-client.js";
import { encodeFrame } from "./frames.js";
import { MessageReader } from "./message-reader.js";

/** A request as the agent received it. */
export type Received = { msg: Record<string, unknown>; payload: Buffer | null; framed: boolean };

/**
 * For unit tests: the agent's end of an in-memory channel. It decodes what the client writes (lines and
 * frames) and lets a test answer as an agent of either protocol, or misbehave.
 */
export class TestPeer {
  readonly received: Received[] = [];
  /** Resync paddings the client wrote. */
  paddings = 0;
  /** The first bytes the client wrote (up to 64). */
  head = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private taken = 0;

  constructor(
    private readonly input: PassThrough,
    readonly output: PassThrough,
  ) {
    const reader = new MessageReader(64 * 1024 * 1024, {
      message: (body, payload) => {
        // A resync's padding: the agent drops it as a malformed line.
        if (body[0] === 0xff) return void this.paddings++;
        this.received.push({ msg: JSON.parse(body.toString("utf8")) as Record<string, unknown>, payload, framed: payload !== null });
        for (const w of this.waiters.splice(0)) w();
      },
      oversizeLine: () => {
        throw new Error("the client wrote an over-long line");
      },
      fatal: (reason) => {
        throw new Error(`the client wrote a bad frame: ${reason}`);
      },
    });
    input.on("data", (chunk: Buffer) => {
      if (this.head.length < 64) this.head = Buffer.concat([this.head, chunk]).subarray(0, 64);
      reader.push(chunk);
    });
  }

  /** The next request not yet taken, waiting for it if need be. */
  async next(): Promise<Received> {
    while (this.taken >= this.received.length) await new Promise<void>((r) => this.waiters.push(r));
    return this.received[this.taken++]!;
  }

  /** Writes a line: an object as JSON, or a string as it is. */
  says(msg: unknown): void {
    this.output.write(`${typeof msg === "string" ? msg : JSON.stringify(msg)}\n`);
  }

  saysFrame(msg: object, payload: Buffer): void {
    for (const part of encodeFrame(msg, payload)) this.output.write(part);
  }

  hello(protocol: number, version = "9.9.9"): void {
    this.says({ ev: "hello", version, protocol });
  }

  /** Answers req as an agent would: a frame to a framed request (with `data` as payload), else a line. */
  ok(req: Received, result: Record<string, unknown> = {}): void {
    const id = req.msg.id;
    if (!req.framed) return this.says({ id, ok: true, result: { ...result, ...(Buffer.isBuffer(result.data) ? { data: result.data.toString("base64") } : {}) } });
    const { data, ...meta } = result;
    this.saysFrame({ id, ok: true, result: meta }, Buffer.isBuffer(data) ? data : Buffer.alloc(0));
  }

  fail(req: Received, code: string, message = "m"): void {
    this.says({ id: req.msg.id, ok: false, error: { code, message } });
  }
}

export function connectTestPeer(): { client: AgentClient; peer: TestPeer } {
  const input = new PassThrough();
  const output = new PassThrough();
  const client = new AgentClient({ input, output }, pino({ level: "silent" }));
  return { client, peer: new TestPeer(input, output) };
}
