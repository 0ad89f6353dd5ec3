/**
 * Splits a byte stream into lines with a hard cap per line, so a sandbox that writes an endless line
 * cannot make the daemon buffer without bound: the over-long line is dropped and reported.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private partLength = 0;
  private discarding = false;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: Buffer) => void,
    private readonly onOversize: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      const piece = chunk.subarray(start, end);
      if (!this.discarding) {
        if (this.partLength + piece.length > this.maxLineBytes) {
          this.discarding = true;
          this.onOversize(this.partLength + piece.length);
          this.parts = [];
          this.partLength = 0;
        } else if (piece.length > 0) {
          this.parts.push(piece);
          this.partLength += piece.length;
        }
      }
      if (nl === -1) return;
      if (!this.discarding && this.partLength > 0) {
        const line = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partLength);
        this.parts = [];
        this.partLength = 0;
        this.onLine(line);
      }
      this.discarding = false;
      start = nl + 1;
    }
  }
}
