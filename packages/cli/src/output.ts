import type { ConnectionOptions } from "@stasis/sdk";

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

/** What every command handler gets: where to write, how to format, how to reach the daemon. */
export interface Context {
  io: Io;
  json: boolean;
  conn: ConnectionOptions;
  env: NodeJS.ProcessEnv;
}

/** Writes and waits when the stream is full, so piping large output does not grow memory. */
export function write(stream: NodeJS.WritableStream, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = stream.write(data, (err) => (err ? reject(err) : undefined));
    if (ok) resolve();
    else stream.once("drain", resolve);
  });
}

export function printJson(ctx: Context, value: unknown): Promise<void> {
  return write(ctx.io.stdout, `${JSON.stringify(value, null, 2)}\n`);
}

/** Decoration and progress: always stderr, so stdout stays data. */
export function note(ctx: Context, message: string): void {
  ctx.io.stderr.write(`${message}\n`);
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** ISO timestamps without the milliseconds noise, in UTC. */
export function time(iso: string | null): string {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-";
}

/** A standby timer as the flags take it: off, or the largest unit that divides it exactly. */
export function timer(ms: number): string {
  if (ms === 0) return "off";
  const units: [string, number][] = [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000], ["ms", 1]];
  const [unit, size] = units.find(([, n]) => ms % n === 0)!;
  return `${ms / size}${unit}`;
}

export function errorLine(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return `error [${code}]: ${message}`;
}

function errorCode(err: unknown): string {
  if (typeof err === "object" && err !== null && "code" in err && typeof err.code === "string") return err.code;
  if (err instanceof Error && err.name === "AbortError") return "aborted";
  return "failed";
}
