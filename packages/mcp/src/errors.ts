import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { StasisError } from "@stasis/sdk";

/** An error in the tool's own input that the schemas cannot express (e.g. a language the runner lacks). */
export class ToolInputError extends Error {}

/**
 * A tool's failure as an MCP tool error (isError), never a protocol error or a crash: the model reads the
 * stable code from the error registry and the daemon's message, and can decide what to do.
 */
export function toolError(err: unknown): CallToolResult {
  return { isError: true, content: [{ type: "text", text: describe(err) }] };
}

function describe(err: unknown): string {
  if (err instanceof StasisError) {
    const retry = err.retryable ? " (retryable: try again)" : "";
    return `error [${err.code}]: ${err.message}${retry}`;
  }
  if (err instanceof ToolInputError) return `error [invalid_request]: ${err.message}`;
  const message = err instanceof Error ? err.message : String(err);
  return `error [internal]: ${message}`;
}
