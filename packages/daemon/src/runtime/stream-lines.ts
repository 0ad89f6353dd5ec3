import type { Readable } from "node:stream";
import { LineSplitter } from "./line-splitter.js";

/** Lines longer than this are dropped (with a note): the daemon holds at most this much per stream. */
const MAX_LINE_BYTES = 64 * 1024;
/** What is emitted of a line is cut to this many characters. */
const MAX_LINE_CHARS = 4096;

/**
 * Streams a child's output a line at a time. Not readline: it buffers a line without bound, so a step
 * printing one endless line (`head -c 600000000 /dev/zero | tr '\0' a`) made the daemon die of
 * "Invalid string length". LineSplitter caps what is held per stream.
 */
export function streamLines(stream: Readable, onLine: (line: string) => void): void {
  const splitter = new LineSplitter(
    MAX_LINE_BYTES,
    (buf) => {
      const line = buf.toString("utf8").replace(/\r$/, "");
      onLine(line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line);
    },
    () => onLine(`… (an output line longer than ${MAX_LINE_BYTES / 1024} KiB was cut)`),
  );
  stream.on("data", (chunk: Buffer) => splitter.push(chunk));
  // A last line without a newline still counts.
  stream.on("end", () => splitter.push(Buffer.from("\n")));
}
