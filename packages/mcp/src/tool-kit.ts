import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult, ContentBlock, ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import type { ConnectionOptions } from "@stasis/sdk";
import type { AnySchema } from "@modelcontextprotocol/sdk/server/zod-compat.js";
import { z } from "zod";
import type { ToolLimits } from "./bounds.js";
import type { CodeRunner } from "./code/code-runner.js";
import { toolError } from "./errors.js";

/** What every tool works with: how to reach the daemon, the bounds, and how code runs. */
export interface ToolContext {
  connection: ConnectionOptions;
  limits: ToolLimits;
  codeRunner: CodeRunner;
}

export interface ToolReply<O> {
  structured: O;
  /** What the model reads; default: the structured result as JSON text. */
  content?: ContentBlock[];
}

export interface ToolDefinition<I extends z.ZodRawShape, O extends z.ZodRawShape> {
  name: string;
  title: string;
  description: string;
  input: I;
  output: O;
  annotations?: ToolAnnotations;
  run(args: z.output<z.ZodObject<I>>, signal: AbortSignal): Promise<ToolReply<z.output<z.ZodObject<O>>>>;
}

/**
 * Registers a tool whose failures become tool errors with the registry's code (toolError) and whose result
 * carries both the structured output (checked against `output` by the SDK) and content for the model.
 */
export function addTool<I extends z.ZodRawShape, O extends z.ZodRawShape>(server: McpServer, tool: ToolDefinition<I, O>): void {
  // Strict: a misspelled argument is an error the model sees, not an option silently ignored.
  const inputSchema: AnySchema = z.object(tool.input).strict();
  const outputSchema: AnySchema = z.object(tool.output);
  const config = { title: tool.title, description: tool.description, inputSchema, outputSchema, ...(tool.annotations ? { annotations: tool.annotations } : {}) };
  server.registerTool(tool.name, config, async (args, extra): Promise<CallToolResult> => {
    try {
      // The SDK parsed args with inputSchema, which is z.object(tool.input).
      const reply = await tool.run(args as z.output<z.ZodObject<I>>, extra.signal);
      const structured = reply.structured as Record<string, unknown>;
      return { content: reply.content ?? [{ type: "text", text: JSON.stringify(structured, null, 2) }], structuredContent: structured };
    } catch (err) {
      return toolError(err);
    }
  });
}
