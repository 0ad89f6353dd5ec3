/** Image types MCP clients show as images, by their first bytes. */
const IMAGE_MAGIC: [string, number[]][] = [
  ["image/png", [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  ["image/jpeg", [0xff, 0xd8, 0xff]],
  ["image/gif", [0x47, 0x49, 0x46, 0x38]],
];

const BY_EXTENSION: Record<string, string> = {
  json: "application/json",
  svg: "image/svg+xml",
  html: "text/html",
  csv: "text/csv",
  md: "text/markdown",
  pdf: "application/pdf",
};

/** The image MIME type of these bytes (webp by its RIFF header), or null. */
export function imageType(bytes: Uint8Array): string | null {
  for (const [type, magic] of IMAGE_MAGIC) if (magic.every((b, i) => bytes[i] === b)) return type;
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "image/webp";
  return null;
}

/**
 * Whether bytes are text: valid UTF-8 without NUL. A read cut mid-character (at the byte limit) may end in
 * up to three bytes of an unfinished character, which do not make it binary.
 */
export function isText(bytes: Uint8Array, cut: boolean): boolean {
  if (bytes.includes(0)) return false;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (let trim = 0; trim <= (cut ? 3 : 0) && trim <= bytes.length; trim++) {
    try {
      decoder.decode(bytes.subarray(0, bytes.length - trim));
      return true;
    } catch {
      // try without one more trailing byte
    }
  }
  return false;
}

/** A MIME type for a file: images by content, then by extension, then text or octet-stream. */
export function mimeTypeOf(path: string, bytes: Uint8Array, text: boolean): string {
  const image = imageType(bytes);
  if (image) return image;
  const ext = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase();
  const known = ext === undefined ? undefined : BY_EXTENSION[ext];
  if (known) return known;
  return text ? "text/plain" : "application/octet-stream";
}
