/** A minimal ustar writer for a template's build context (regular files only, names under 100 bytes). */
export function tar(files: { name: string; content: string }[]): Blob {
  const enc = new TextEncoder();
  const blocks: Uint8Array[] = [];
  for (const f of files) {
    const data = enc.encode(f.content);
    const header = new Uint8Array(512);
    const put = (text: string, offset: number) => header.set(enc.encode(text), offset);
    const octal = (n: number, width: number) => n.toString(8).padStart(width - 1, "0") + "\0";
    put(f.name, 0);
    put(octal(0o644, 8), 100);
    put(octal(0, 8), 108);
    put(octal(0, 8), 116);
    put(octal(data.length, 12), 124);
    put(octal(Math.floor(Date.now() / 1000), 12), 136);
    put("        ", 148); // checksum counted as spaces
    put("0", 156);
    put("ustar\u000000", 257);
    const sum = header.reduce((a, b) => a + b, 0);
    put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    blocks.push(header, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  return new Blob(blocks as BlobPart[], { type: "application/x-tar" });
}
