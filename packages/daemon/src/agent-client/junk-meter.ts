import type { Logger } from "pino";

/** Messages that fail to parse or validate, per window. A restarted daemon may read the tail of one. */
export const MALFORMED_LIMIT = 100;
/** Well-formed messages that serve nothing (an unknown event, a reply to no request, output nobody can keep). */
export const UNEXPECTED_LIMIT = 1000;
/** Bytes of either kind (an over-long line counts with all its bytes). */
export const JUNK_BYTES_LIMIT = 64 * 1024 * 1024;
export const JUNK_WINDOW_MS = 10_000;
/** How many are logged per window: a flood must not become a flood of log lines. */
const LOGGED = 5;

type Window = { since: number; malformed: number; unexpected: number; bytes: number; logged: number };

/**
 * What one sandbox's channel may cost the daemon in messages that do not serve it. Everything the agent
 * says is untrusted, and anything in the sandbox that reaches the channel can say anything: past a bound
 * per window the channel is declared broken (`broken` is called once, with the reason) and the caller
 * stops reading it, so a flood costs bounded CPU and log, and no other sandbox notices.
 */
export class JunkMeter {
  private window: Window = { since: 0, malformed: 0, unexpected: 0, bytes: 0, logged: 0 };
  private tripped = false;

  constructor(
    private readonly log: Logger,
    private readonly broken: (reason: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** A message that does not parse or validate. */
  malformed(what: string, bytes: number): void {
    this.count("malformed", what, bytes);
  }

  /** A valid message that serves nothing. */
  unexpected(what: string, bytes: number): void {
    this.count("unexpected", what, bytes);
  }

  private count(kind: "malformed" | "unexpected", what: string, bytes: number): void {
    if (this.tripped) return;
    const now = this.now();
    const w = now - this.window.since > JUNK_WINDOW_MS ? (this.window = { since: now, malformed: 0, unexpected: 0, bytes: 0, logged: 0 }) : this.window;
    w[kind]++;
    w.bytes += bytes;
    if (w.logged < LOGGED) {
      w.logged++;
      this.log.warn({ what }, `agent sent ${kind === "malformed" ? "a malformed" : "an unexpected"} message; dropped${w.logged === LOGGED ? " (no more are logged for 10 s)" : ""}`);
    }
    const seconds = JUNK_WINDOW_MS / 1000;
    let reason: string | null = null;
    if (w.malformed > MALFORMED_LIMIT) reason = `the agent sent more than ${MALFORMED_LIMIT} malformed messages within ${seconds} s`;
    else if (w.unexpected > UNEXPECTED_LIMIT) reason = `the agent sent more than ${UNEXPECTED_LIMIT} messages that answer nothing within ${seconds} s`;
    else if (w.bytes > JUNK_BYTES_LIMIT) reason = `the agent sent more than ${JUNK_BYTES_LIMIT / 2 ** 20} MiB of unusable messages within ${seconds} s`;
    if (reason === null) return;
    this.tripped = true;
    this.broken(`${reason} (last: ${what})`);
  }
}
