import { Parser } from "tar";

export interface TarEntry {
  path: string;
  type: string;
  linkpath: string | undefined;
  mode: number | undefined;
  content: string;
}

/** The entries of an uncompressed tar, in archive order, with file contents as text. */
export async function tarEntries(data: Uint8Array): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      strict: true,
      onReadEntry: (entry) => {
        const chunks: Buffer[] = [];
        entry.on("data", (c: Buffer) => chunks.push(c));
        entry.on("end", () => entries.push({ path: entry.path, type: entry.type, linkpath: entry.linkpath, mode: entry.mode, content: Buffer.concat(chunks).toString() }));
      },
    });
    parser.on("end", resolve);
    parser.on("error", reject);
    parser.end(Buffer.from(data));
  });
  return entries;
}

/** Reads a whole web stream, as fetch would send it. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}
