import pino from "pino";
import { describe, expect, it } from "vitest";
import { connectTestPeer } from "./test-peer.js";
import { JunkMeter, JUNK_BYTES_LIMIT, JUNK_WINDOW_MS, MALFORMED_LIMIT, UNEXPECTED_LIMIT } from "./junk-meter.js";

const tick = () => new Promise((r) => setImmediate(r));

/** A meter on a clock the test moves, with its log lines and the reason it broke (if it did). */
function meter() {
  const lines: string[] = [];
  const log = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) });
  let now = 1_000_000;
  const reasons: string[] = [];
  const m = new JunkMeter(log, (r) => reasons.push(r), () => now);
  return { m, lines, reasons, advance: (ms: number) => (now += ms) };
}

describe("JunkMeter", () => {
  it("breaks once, past the malformed limit of a window, and logs only a few", () => {
    const { m, lines, reasons } = meter();
    for (let i = 0; i < 100_000; i++) m.malformed(`junk ${i}`, 8);
    expect(reasons).toEqual([`the agent sent more than ${MALFORMED_LIMIT} malformed messages within 10 s (last: junk ${MALFORMED_LIMIT})`]);
    expect(lines).toHaveLength(5);
  });

  it("tolerates a trickle: the count starts again each window", () => {
    const { m, reasons, advance } = meter();
    for (let w = 0; w < 20; w++) {
      for (let i = 0; i < MALFORMED_LIMIT; i++) m.malformed("torn", 10);
      for (let i = 0; i < UNEXPECTED_LIMIT; i++) m.unexpected("late reply", 10);
      advance(JUNK_WINDOW_MS + 1);
    }
    expect(reasons).toEqual([]);
  });

  it("breaks past the unexpected-message limit and past the byte limit", () => {
    const a = meter();
    for (let i = 0; i <= UNEXPECTED_LIMIT; i++) a.m.unexpected("a reply to no request", 20);
    expect(a.reasons).toEqual([`the agent sent more than ${UNEXPECTED_LIMIT} messages that answer nothing within 10 s (last: a reply to no request)`]);
    const b = meter();
    for (let i = 0; i < 17; i++) b.m.malformed("an over-long line", 4 * 2 ** 20);
    expect(b.reasons).toEqual([`the agent sent more than ${JUNK_BYTES_LIMIT / 2 ** 20} MiB of unusable messages within 10 s (last: an over-long line)`]);
  });
});

describe("AgentConnection under a flood of well-formed junk", () => {
  for (const [what, line, wanted] of [
    ["empty objects", "{}", /agent channel broken: the agent sent more than 100 malformed messages/],
    ["replies to no request", '{"id":1,"ok":true}', /agent channel broken: the agent sent more than 1000 messages that answer nothing/],
    ["unknown events", '{"ev":"zzz"}', /agent channel broken: the agent sent more than 1000 messages that answer nothing/],
  ] as const) {
    it(`closes the channel on ${what}, failing what is in flight with the reason, and reads no more`, async () => {
      const { client, peer } = connectTestPeer();
      const failed = expect(client.ps()).rejects.toMatchObject({ code: "sandbox_failed", message: wanted });
      await peer.next();
      let reason = "";
      client.on("closed", (r: string) => (reason = r));
      peer.output.write(`${line}\n`.repeat(5000));
      await tick();
      expect(reason).toMatch(wanted);
      await failed;
      expect(client.closed).toBe(true);
      expect(peer.output.destroyed).toBe(true);
    });
  }

  it("bounds how many unknown pids' events it keeps", async () => {
    const { client, peer } = connectTestPeer();
    let reason = "";
    client.on("closed", (r: string) => (reason = r));
    for (let pid = 10; pid < 10 + 1024 + 1001; pid++) peer.says({ ev: "exit", pid, code: 0, signal: null });
    await tick();
    expect(reason).toMatch(/more than 1000 messages that answer nothing.*yet another unknown pid/);
  });
});
