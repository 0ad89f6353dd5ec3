import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ContentBlock } from "@modelcontextprotocol/sdk/types.js";
import { AbsolutePathSchema } from "@stasis/protocol";
import { Sandbox } from "@stasis/sdk";
import { z } from "zod";
import { readUpTo } from "../bounds.js";
import { ToolInputError } from "../errors.js";
import { imageType, isText, mimeTypeOf } from "../mime.js";
import { addTool, type ToolContext } from "../tool-kit.js";
import { sandboxId } from "./shapes.js";

const path = AbsolutePathSchema.describe("Absolute path inside the sandbox.");

/** read_file, write_file, list_files. */
export function addFileTools(server: McpServer, ctx: ToolContext): void {
  const conn = ctx.connection;
  const { maxReadBytes, maxReadBytesCap, maxListEntries } = ctx.limits;

  addTool(server, {
    name: "read_file",
    title: "Read a file",
    description: `Reads a file of the sandbox: text as text, images (PNG, JPEG, GIF, WebP) as images, other binary files as base64. At most maxBytes are returned (default ${maxReadBytes}, images ${maxReadBytesCap}); the result says when the file was cut.`,
    input: { sandboxId, path, maxBytes: z.number().int().min(1).max(maxReadBytesCap).optional().describe(`Return at most this many bytes (up to ${maxReadBytesCap}).`) },
    output: {
      path: z.string(),
      mimeType: z.string(),
      encoding: z.enum(["utf8", "base64", "image"]).describe("utf8: content is the text; base64: content is the bytes in base64; image: the image is in the result's content, not here."),
      content: z.string().nullable(),
      bytes: z.number().int().describe("Bytes returned."),
      truncated: z.boolean().describe("True when the file is longer than what was returned."),
    },
    annotations: { readOnlyHint: true },
    run: async ({ sandboxId: id, path: file, maxBytes }, signal) => {
      const sandbox = await Sandbox.connect(id, conn);
      // An image is whole or useless: it may be as large as the cap unless the call says otherwise.
      const limit = (first: Uint8Array) => maxBytes ?? (imageType(first) ? maxReadBytesCap : maxReadBytes);
      const { bytes, cut } = await readUpTo(await sandbox.files.readStream(file, { signal }), limit);
      const text = isText(bytes, cut);
      const mimeType = mimeTypeOf(file, bytes, text);
      const note = cut ? `\n[... cut at ${bytes.length} bytes: the file is longer; pass a larger maxBytes (up to ${maxReadBytesCap}) or read it with run_command]` : "";
      const base = { path: file, mimeType, bytes: bytes.length, truncated: cut };
      if (imageType(bytes) && !cut) {
        const content: ContentBlock[] = [
          { type: "image", data: Buffer.from(bytes).toString("base64"), mimeType },
          { type: "text", text: `${file}: ${mimeType}, ${bytes.length} bytes` },
        ];
        return { structured: { ...base, encoding: "image" as const, content: null }, content };
      }
      if (text) {
        const decoded = new TextDecoder().decode(bytes);
        return { structured: { ...base, encoding: "utf8" as const, content: decoded }, content: [{ type: "text", text: decoded + note }] };
      }
      const base64 = Buffer.from(bytes).toString("base64");
      const content: ContentBlock[] = [
        { type: "resource", resource: { uri: `stasis://${id}${file}`, mimeType, blob: base64 } },
        { type: "text", text: `${file}: ${mimeType}, ${bytes.length} bytes, binary (base64 in the resource)${note}` },
      ];
      return { structured: { ...base, encoding: "base64" as const, content: base64 }, content };
    },
  });

  addTool(server, {
    name: "write_file",
    title: "Write a file",
    description: "Writes a file in the sandbox atomically, creating parent directories; replaces an existing file.",
    input: {
      sandboxId,
      path,
      content: z.string().describe("The file's content: text, or base64 with encoding base64."),
      encoding: z.enum(["utf8", "base64"]).optional().describe("How content is encoded (default utf8)."),
      mode: z.string().regex(/^[0-7]{3,4}$/).optional().describe("Permission bits in octal, e.g. 755."),
    },
    output: { path: z.string(), size: z.number().int(), mode: z.string() },
    annotations: { destructiveHint: true, idempotentHint: true },
    run: async ({ sandboxId: id, path: file, content, encoding, mode }, signal) => {
      if (encoding === "base64" && !/^[A-Za-z0-9+/]*={0,2}$/.test(content.replace(/\s+/g, ""))) throw new ToolInputError("content is not base64");
      const data = encoding === "base64" ? new Uint8Array(Buffer.from(content, "base64")) : content;
      const sandbox = await Sandbox.connect(id, conn);
      const info = await sandbox.files.write(file, data, { signal, ...(mode ? { mode } : {}) });
      return { structured: { path: info.path, size: info.size, mode: (info.mode & 0o7777).toString(8) } };
    },
  });

  addTool(server, {
    name: "list_files",
    title: "List a directory",
    description: `Lists a directory of the sandbox (recursing depth levels), at most ${maxListEntries} entries.`,
    input: { sandboxId, path, depth: z.number().int().min(1).max(8).optional().describe("Levels to recurse (default 1).") },
    output: {
      entries: z.array(z.object({ path: z.string(), type: z.enum(["file", "dir", "symlink", "other"]), size: z.number(), mode: z.string(), mtime: z.string(), symlinkTarget: z.string().nullable() })),
      truncated: z.boolean().describe("True when entries were left out."),
    },
    annotations: { readOnlyHint: true },
    run: async ({ sandboxId: id, path: dir, depth }) => {
      const sandbox = await Sandbox.connect(id, conn);
      const list = await sandbox.files.list(dir, { depth: depth ?? 1 });
      const entries = list.entries.slice(0, maxListEntries).map((e) => ({ path: e.path, type: e.type, size: e.size, mode: (e.mode & 0o7777).toString(8), mtime: e.mtime, symlinkTarget: e.symlinkTarget }));
      return { structured: { entries, truncated: list.truncated || list.entries.length > maxListEntries } };
    },
  });
}
