import { z } from "zod";
import { ErrorBodySchema } from "./errors.js";

/** Languages a code context runs. python is an IPython kernel; javascript and typescript one node vm. */
export const CodeLanguageSchema = z.enum(["python", "javascript", "typescript", "bash"]);
export type CodeLanguage = z.infer<typeof CodeLanguageSchema>;

/** Context ids are the in-sandbox server's UUIDs. */
export const CodeContextIdSchema = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "a context id (UUID)");

export const MAX_CODE_BYTES = 1024 * 1024;

export const RunCodeRequestSchema = z
  .object({
    code: z.string().max(MAX_CODE_BYTES),
    /** The language's default context (made on first use). Give this or contextId, not both. Default python. */
    language: CodeLanguageSchema.optional(),
    contextId: CodeContextIdSchema.optional(),
    /** Set for this run only, restored after it. */
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().max(32_768)).optional(),
    /** The run is interrupted after this long (the context keeps its state and stays usable). */
    timeoutMs: z.number().int().min(1).max(86_400_000).optional(),
  })
  .strict()
  .refine((r) => !(r.language && r.contextId), { message: "give language or contextId, not both" })
  .meta({ id: "RunCodeRequest" });
export type RunCodeRequest = z.infer<typeof RunCodeRequestSchema>;

/** A display value by format, as Jupyter's MIME bundle; png and jpeg are base64, data a DataFrame as JSON. */
export const CodeResultSchema = z
  .object({
    isMainResult: z.boolean(),
    text: z.string().optional(),
    html: z.string().optional(),
    markdown: z.string().optional(),
    svg: z.string().optional(),
    png: z.string().optional(),
    jpeg: z.string().optional(),
    pdf: z.string().optional(),
    latex: z.string().optional(),
    json: z.unknown().optional(),
    javascript: z.string().optional(),
    /** A pandas DataFrame: `{columns, index, data}` (rows). */
    data: z.unknown().optional(),
    chart: z.unknown().optional(),
    /** Formats without a field of their own, by MIME type. */
    extra: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "CodeResult" });
export type CodeResult = z.infer<typeof CodeResultSchema>;

export const CodeExceptionSchema = z.object({ name: z.string(), value: z.string(), traceback: z.string() }).meta({ id: "CodeException" });
export type CodeException = z.infer<typeof CodeExceptionSchema>;

/**
 * One line of a code run's NDJSON stream. `exception` is the code's own error (a run can go on after one
 * only in bash); `end` or `error` (the API's, e.g. the sandbox died) always ends the stream.
 */
export const CodeEventSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("stdout"), text: z.string() }),
    z.object({ type: z.literal("stderr"), text: z.string() }),
    z.object({ type: z.literal("result"), result: CodeResultSchema }),
    z.object({ type: z.literal("exception"), exception: CodeExceptionSchema }),
    z.object({ type: z.literal("end"), executionCount: z.number().int().nullable() }),
    z.object({ type: z.literal("error"), error: ErrorBodySchema }),
  ])
  .meta({ id: "CodeEvent" });
export type CodeEvent = z.infer<typeof CodeEventSchema>;

export const CodeContextSchema = z.object({ id: CodeContextIdSchema, language: CodeLanguageSchema, cwd: z.string() }).meta({ id: "CodeContext" });
export type CodeContext = z.infer<typeof CodeContextSchema>;

export const CodeContextListSchema = z.object({ contexts: z.array(CodeContextSchema) }).meta({ id: "CodeContextList" });
export type CodeContextList = z.infer<typeof CodeContextListSchema>;

export const CreateCodeContextRequestSchema = z
  .object({
    language: CodeLanguageSchema.default("python"),
    /** Working directory the context starts in. Default: the user's home. */
    cwd: z.string().min(1).max(4096).startsWith("/").optional(),
  })
  .strict()
  .meta({ id: "CreateCodeContextRequest" });
export type CreateCodeContextRequest = z.input<typeof CreateCodeContextRequestSchema>;

export const CodeContextParamSchema = z.object({ id: z.string(), contextId: CodeContextIdSchema });
