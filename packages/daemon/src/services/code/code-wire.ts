import { z } from "zod";
import type { CodeContext, CodeEvent, CodeResult } from "@stasis/protocol";
import { CodeContextSchema } from "@stasis/protocol";

// What the in-sandbox code interpreter (examples/templates/code-interpreter/server, E2B's code-interpreter
// wire format on :49999) sends. It runs the user's code, so every line is untrusted: validated here and
// translated into Stasis's CodeEvent, never passed through as is.

const text = z.string().max(64 * 1024 * 1024);

const WireResultSchema = z
  .object({
    type: z.literal("result"),
    is_main_result: z.boolean().optional(),
    text: text.optional(),
    html: text.optional(),
    markdown: text.optional(),
    svg: text.optional(),
    png: text.optional(),
    jpeg: text.optional(),
    pdf: text.optional(),
    latex: text.optional(),
    json: z.unknown().optional(),
    javascript: text.optional(),
    data: z.unknown().optional(),
    chart: z.unknown().optional(),
    extra: z.record(z.string().max(256), z.unknown()).optional(),
  })
  .loose();

export const WireEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("stdout"), text }).loose(),
  z.object({ type: z.literal("stderr"), text }).loose(),
  WireResultSchema,
  z.object({ type: z.literal("error"), name: z.string().max(1024), value: text, traceback: text }).loose(),
  z.object({ type: z.literal("number_of_executions"), execution_count: z.number().int().min(0) }).loose(),
  z.object({ type: z.literal("end_of_execution") }).loose(),
]);
export type WireEvent = z.infer<typeof WireEventSchema>;

export const WireContextListSchema = z.array(CodeContextSchema).max(10_000);

const RESULT_FIELDS = ["text", "html", "markdown", "svg", "png", "jpeg", "pdf", "latex", "json", "javascript", "data", "chart", "extra"] as const;

/** The Stasis event for a wire line; null for lines that end the run or only carry the count. */
export function toCodeEvent(e: WireEvent): CodeEvent | null {
  switch (e.type) {
    case "stdout":
    case "stderr":
      return { type: e.type, text: e.text };
    case "result": {
      const result: CodeResult = { isMainResult: e.is_main_result === true };
      for (const f of RESULT_FIELDS) if (e[f] !== undefined) (result as Record<string, unknown>)[f] = e[f];
      return { type: "result", result };
    }
    case "error":
      return { type: "exception", exception: { name: e.name, value: e.value, traceback: e.traceback } };
    default:
      return null;
  }
}

export type { CodeContext };
