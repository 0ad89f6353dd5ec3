import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ContentBlock } from "@modelcontextprotocol/sdk/types.js";
import { Sandbox } from "@stasis/sdk";
import { z } from "zod";
import { CODE_LANGUAGES, type CodeRunOutput } from "../code/code-runner.js";
import { addTool, type ToolContext } from "../tool-kit.js";
import { sandboxId } from "./shapes.js";

const resultSchema = z.object({
  isMainResult: z.boolean().describe("The value of the code's last expression."),
  text: z.string().nullable(),
  formats: z.array(z.string()).describe("The formats the value came in (png, svg, html, ...)."),
  imageIndex: z.number().int().nullable().describe("Index in the result's content of the image block showing it."),
});

/** run_code: code with notebook-like results; images come back as MCP image content. */
export function addCodeTools(server: McpServer, ctx: ToolContext): void {
  addTool(server, {
    name: "run_code",
    title: "Run code",
    description:
      "Runs Python (default), JavaScript or bash code in the sandbox. Python runs like a notebook cell: the last expression's value is returned, and plots (matplotlib figures, objects with _repr_png_) come back as images. Returns stdout, stderr, results and the exception if any.",
    input: {
      sandboxId,
      code: z.string().min(1).max(1024 * 1024).describe("The code to run."),
      language: z.enum(CODE_LANGUAGES).optional().describe("python (default), javascript, typescript (code-interpreter sandboxes) or bash."),
      timeoutMs: z.number().int().min(1).max(3600_000).optional().describe("Stop the run after this long (default 60000)."),
    },
    output: {
      stdout: z.string(),
      stderr: z.string(),
      truncated: z.boolean(),
      results: z.array(resultSchema),
      error: z.object({ name: z.string(), value: z.string(), traceback: z.string() }).nullable(),
    },
    annotations: { openWorldHint: true },
    run: async ({ sandboxId: id, code, language, timeoutMs }, signal) => {
      const sandbox = await Sandbox.connect(id, ctx.connection);
      const output = await ctx.codeRunner({
        sandbox,
        code,
        language: language ?? "python",
        timeoutMs: timeoutMs ?? 60_000,
        signal,
        maxOutputChars: ctx.limits.maxOutputChars,
        maxResultBytes: ctx.limits.maxResultBytes,
      });
      return toReply(output);
    },
  });
}

/** The model reads one text block (output, error, text results), then each image as an image block. */
export function toReply(output: CodeRunOutput): { structured: { stdout: string; stderr: string; truncated: boolean; results: z.output<typeof resultSchema>[]; error: CodeRunOutput["error"] }; content: ContentBlock[] } {
  const images: ContentBlock[] = [];
  const results = output.results.map((r) => {
    const formats = (["png", "jpeg", "svg", "html", "markdown", "text"] as const).filter((f) => r[f] !== undefined);
    const image = r.png !== undefined ? { data: r.png, mimeType: "image/png" } : r.jpeg !== undefined ? { data: r.jpeg, mimeType: "image/jpeg" } : null;
    let imageIndex: number | null = null;
    if (image) {
      imageIndex = images.length + 1;
      images.push({ type: "image", ...image });
    }
    return { isMainResult: r.isMainResult, text: r.text ?? r.markdown ?? null, formats, imageIndex };
  });
  const parts: string[] = [];
  if (output.stdout) parts.push(`stdout:\n${output.stdout}`);
  if (output.stderr) parts.push(`stderr:\n${output.stderr}`);
  for (const r of results) if (r.text !== null) parts.push(`${r.isMainResult ? "result" : "display"}${r.imageIndex === null ? "" : " (image below)"}: ${r.text}`);
  if (output.error) parts.push(`error: ${output.error.name}: ${output.error.value}${output.error.traceback ? `\n${output.error.traceback}` : ""}`);
  if (parts.length === 0) parts.push(images.length > 0 ? "(no output; images below)" : "(no output)");
  return {
    structured: { stdout: output.stdout, stderr: output.stderr, truncated: output.truncated, results, error: output.error },
    content: [{ type: "text", text: parts.join("\n\n") }, ...images],
  };
}
