import { crc32 } from "./crc32.js";
import { randomBytes } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { TRANSFER } from "./file-transfer.js";
import { connectTestPeer, type Received, type TestPeer } from "./test-peer.js";

const stat = (size: number) => ({ name: "f", path: "/f", type: "file", size, mode: 420, mtimeMs: 1, uid: 0, gid: 0 });

async function ready(protocol: number) {
  const { client, peer } = connectTestPeer();
  const r = client.waitReady(1000);
  peer.hello(protocol);
  await r;
  // waitReady's ping, which the hello made moot.
  expect((await peer.next()).msg.op).toBe("ping");
  return { client, peer };
}

async function* chunksOf(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += size) yield data.subarray(off, off + size);
}

/** Plays the agent's side of a write: collects the chunks, answering them only once `window` are in flight (or all have come). */
async function serveWrite(peer: TestPeer, window: number, size: number): Promise<{ chunks: Received[]; maxInFlight: number }> {
  const open = await peer.next();
  expect(open.msg).toMatchObject({ op: "write_open", path: "/f", parents: true });
  peer.ok(open, { handle: "h1" });
  const chunks: Received[] = [];
  let unanswered: Received[] = [];
  let maxInFlight = 0;
  let bytes = 0;
  for (;;) {
    const req = await peer.next();
    if (req.msg.op === "write_close") {
      for (const c of unanswered) peer.ok(c);
      peer.ok(req, stat(size));
      return { chunks, maxInFlight };
    }
    expect(req.msg).toMatchObject({ op: "write_chunk", handle: "h1" });
    chunks.push(req);
    unanswered.push(req);
    bytes += req.payload?.length ?? Buffer.from(req.msg.data as string, "base64").length;
    maxInFlight = Math.max(maxInFlight, unanswered.length);
    if (unanswered.length === window || bytes === size) {
      for (const c of unanswered) peer.ok(c);
      unanswered = [];
    }
  }
}

describe("file transfer", () => {
  it("writes raw frames to a protocol-2 agent, several chunks in flight", async () => {
    const { client, peer } = await ready(2);
    const content = randomBytes(5 * TRANSFER.frames.chunkBytes + 777);
    const written = client.writeFile("/f", chunksOf(content, 65_536), { maxBytes: 1 << 30 });
    const { chunks, maxInFlight } = await serveWrite(peer, TRANSFER.frames.window, content.length);
    expect(await written).toMatchObject({ size: content.length });
    expect(chunks.every((c) => c.framed && c.msg.data === undefined)).toBe(true);
    expect(Buffer.concat(chunks.map((c) => c.payload!)).equals(content)).toBe(true);
    expect(chunks[0]!.payload!.length).toBe(TRANSFER.frames.chunkBytes);
    expect(maxInFlight).toBe(Math.min(chunks.length, TRANSFER.frames.window));
  });

  it("reuses a chunk's buffer once the agent has answered it, never before", async () => {
    const { client, peer } = await ready(2);
    const { chunkBytes, window } = TRANSFER.frames;
    const content = randomBytes(4 * window * chunkBytes + 3);
    const alloc = vi.spyOn(Buffer, "allocUnsafe");
    try {
      const written = client.writeFile("/f", chunksOf(content, 65_536), { maxBytes: 1 << 30 });
      // The agent answers a window's chunks only once all of them have come: a buffer reused before its
      // answer would have been overwritten by then, and the file would come out wrong.
      const { chunks } = await serveWrite(peer, window, content.length);
      await written;
      expect(Buffer.concat(chunks.map((c) => c.payload!)).equals(content)).toBe(true);
      // A buffer per chunk in flight and the one being filled, not one per chunk (V8 collects garbage
      // several times per 100 MiB of fresh 1 MiB buffers).
      const chunkBuffers = alloc.mock.calls.filter(([size]) => size === chunkBytes).length;
      expect(chunks.length).toBe(4 * window + 1);
      expect(chunkBuffers).toBeLessThanOrEqual(window + 1);
    } finally {
      alloc.mockRestore();
    }
  });

  it("writes base64 lines to a protocol-1 agent", async () => {
    const { client, peer } = await ready(1);
    const content = randomBytes(3 * TRANSFER.lines.chunkBytes + 5);
    const written = client.writeFile("/f", chunksOf(content, 100_000), { maxBytes: 1 << 30 });
    const { chunks, maxInFlight } = await serveWrite(peer, TRANSFER.lines.window, content.length);
    await written;
    expect(chunks.every((c) => !c.framed && typeof c.msg.data === "string")).toBe(true);
    expect(Buffer.concat(chunks.map((c) => Buffer.from(c.msg.data as string, "base64"))).equals(content)).toBe(true);
    expect(maxInFlight).toBe(Math.min(chunks.length, TRANSFER.lines.window));
  });

  it("aborts the write when a chunk fails or the upload is too large", async () => {
    const { client, peer } = await ready(2);
    const failing = client.writeFile("/f", chunksOf(randomBytes(3 * TRANSFER.frames.chunkBytes), 65_536), { maxBytes: 1 << 30 });
    peer.ok(await peer.next(), { handle: "h1" });
    peer.fail(await peer.next(), "io_error", "disk full");
    let req = await peer.next();
    while (req.msg.op !== "write_abort") req = await peer.next();
    peer.ok(req);
    await expect(failing).rejects.toMatchObject({ message: "disk full" });

    const large = client.writeFile("/f", chunksOf(Buffer.alloc(1000), 100), { maxBytes: 999 });
    peer.ok(await peer.next(), { handle: "h2" });
    const abort = await peer.next();
    expect(abort.msg).toMatchObject({ op: "write_abort", handle: "h2" });
    peer.ok(abort);
    await expect(large).rejects.toMatchObject({ code: "payload_too_large" });
  });

  for (const protocol of [1, 2]) {
    it(`reads a file with read-ahead from a protocol-${protocol} agent`, async () => {
      const { client, peer } = await ready(protocol);
      const { chunkBytes, window } = protocol === 2 ? TRANSFER.frames : TRANSFER.lines;
      const content = randomBytes(4 * chunkBytes + 99);
      const got: Buffer[] = [];
      const reading = (async () => {
        for await (const c of client.readFile("/f", content.length)) got.push(c);
      })();
      // Every read the stat's size allows is asked for before the first answer.
      const first: Received[] = [];
      for (let i = 0; i < Math.min(window, 5); i++) first.push(await peer.next());
      expect(first.map((r) => r.msg.offset)).toEqual(first.map((_, i) => i * chunkBytes));
      expect(first.every((r) => r.framed === (protocol === 2))).toBe(true);
      const answer = (r: Received) => {
        const offset = r.msg.offset as number;
        const data = content.subarray(offset, offset + (r.msg.length as number));
        peer.ok(r, { data, eof: offset + data.length >= content.length, size: content.length });
      };
      for (const r of first.reverse()) answer(r);
      // The rest, as they come, until the reader has seen eof.
      let done = false;
      void reading.then(() => (done = true));
      while (!done) {
        const next = await Promise.race([peer.next(), reading.then(() => null)]);
        if (next) answer(next);
      }
      expect(Buffer.concat(got).equals(content)).toBe(true);
    });
  }

  it("goes on from a short read without leaving a gap, and reads past the stat's size until eof", async () => {
    const { client, peer } = await ready(2);
    const { chunkBytes } = TRANSFER.frames;
    const content = randomBytes(2 * chunkBytes + 10);
    const got: Buffer[] = [];
    const reading = (async () => {
      for await (const c of client.readFile("/f", 0)) got.push(c);
    })();
    const r0 = await peer.next();
    expect(r0.msg.offset).toBe(0);
    peer.ok(r0, { data: content.subarray(0, 100), eof: false, size: 0 });
    const r1 = await peer.next();
    expect(r1.msg.offset).toBe(100);
    peer.ok(r1, { data: content.subarray(100, 100 + chunkBytes), eof: false, size: 0 });
    const r2 = await peer.next();
    peer.ok(r2, { data: content.subarray(100 + chunkBytes), eof: true, size: 0 });
    await reading;
    expect(Buffer.concat(got).equals(content)).toBe(true);
  });

  it("opens a file by reading its first chunk: the agent's refusal is thrown before any byte is streamed", async () => {
    const { client, peer } = await ready(2);
    for (const code of ["not_found", "symlink_loop", "is_a_directory", "not_regular"]) {
      const opening = client.openFile("/f");
      peer.fail(await peer.next(), code);
      await expect(opening).rejects.toMatchObject({ status: expect.any(Number) as number });
    }
    // A readable file: the first chunk is streamed as it came, the rest read from its end.
    const { chunkBytes } = TRANSFER.frames;
    const content = randomBytes(chunkBytes + 5);
    const opening = client.openFile("/f");
    const r0 = await peer.next();
    expect(r0.msg).toMatchObject({ op: "read", offset: 0, length: chunkBytes });
    peer.ok(r0, { data: content.subarray(0, chunkBytes), eof: false, size: content.length });
    const { size, body } = await opening;
    expect(size).toBe(content.length);
    const got: Buffer[] = [];
    const reading = (async () => {
      for await (const c of body) got.push(c);
    })();
    const r1 = await peer.next();
    expect(r1.msg.offset).toBe(chunkBytes);
    peer.ok(r1, { data: content.subarray(chunkBytes), eof: true, size: content.length });
    await reading;
    expect(Buffer.concat(got).equals(content)).toBe(true);
  });

  it("refuses a read answered with more bytes than asked", async () => {
    const { client, peer } = await ready(2);
    const p = client.read({ path: "/f", offset: 0, length: 10 });
    peer.ok(await peer.next(), { data: Buffer.alloc(11), eof: true, size: 11 });
    await expect(p).rejects.toMatchObject({ code: "sandbox_failed", message: /10-byte read with 11 bytes/ });
  });

  it("sends stdin as frames to protocol 2 and as base64 to protocol 1, closing it on the last piece only", async () => {
    for (const protocol of [1, 2]) {
      const { client, peer } = await ready(protocol);
      // Two pieces either way: frames carry at most 1 MiB from the daemon, base64 lines 1 MiB decoded.
      const data = randomBytes(1536 * 1024);
      const sent = client.stdin(9, data, true);
      const pieces: Received[] = [];
      for (;;) {
        const r = await peer.next();
        pieces.push(r);
        peer.ok(r);
        if (r.msg.eof === true) break;
      }
      await sent;
      expect(pieces).toHaveLength(2);
      expect(pieces.map((p) => p.msg.eof)).toEqual([false, true]);
      const bytes = pieces.map((p) => (protocol === 2 ? p.payload! : Buffer.from(p.msg.data as string, "base64")));
      expect(Buffer.concat(bytes).equals(data)).toBe(true);
      // Each frame names its payload's crc, so the agent can refuse one torn by a daemon's death.
      if (protocol === 2) for (const p of pieces) expect(p.msg.crc).toBe(crc32(p.payload!));
    }
  });
});
