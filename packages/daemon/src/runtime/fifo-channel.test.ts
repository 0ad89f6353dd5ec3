import { closeSync, constants, existsSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CHANNEL_PIPE_BYTES, FifoPair } from "./fifo-channel.js";

// The agent binary the daemon runs as the helper (built by set-up: bash packages/agent/build.sh).
const AGENT = new URL("../../../agent/dist/stasis-agent", import.meta.url).pathname;

/** How many bytes one non-blocking write puts into the pipe while nobody reads it: its capacity. */
function capacity(path: string): number {
  const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    return writeSync(fd, Buffer.alloc(2 * CHANNEL_PIPE_BYTES));
  } finally {
    closeSync(fd);
  }
}

describe("agent channel pipes", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("are widened to hold a whole 1 MiB frame, on both sides", async () => {
    expect(existsSync(AGENT), `${AGENT} (bash packages/agent/build.sh)`).toBe(true);
    dir = mkdtempSync(join(tmpdir(), "fifo-"));
    const fifos = new FifoPair(dir);
    await fifos.create();
    const fds = fifos.openForRuntime();
    try {
      expect(capacity(fifos.inPath)).toBe(64 * 1024);
      await FifoPair.widen(AGENT, fds);
      // Nobody reads the pipes: what was written stays in them and counts against the capacity.
      expect(capacity(fifos.outPath)).toBe(CHANNEL_PIPE_BYTES);
      expect(capacity(fifos.inPath)).toBe(CHANNEL_PIPE_BYTES - 64 * 1024);
    } finally {
      closeSync(fds.stdin);
      closeSync(fds.stdout);
    }
  });

  it("reports a helper that cannot widen them", async () => {
    dir = mkdtempSync(join(tmpdir(), "fifo-"));
    const file = openSync(join(dir, "not-a-pipe"), "w");
    try {
      await expect(FifoPair.widen(AGENT, { stdin: file, stdout: file })).rejects.toThrow(/F_SETPIPE_SZ/);
    } finally {
      closeSync(file);
    }
  });
});
