import type { CommandSpec } from "./specs.js";

/** `stasis mcp`: the MCP server on stdio, for agents (Claude Code, Cursor, VS Code) that start it themselves. */
export const mcpSpecs: CommandSpec[] = [
  {
    path: "mcp",
    usage: "stasis mcp [--api-url URL] [--api-key KEY]",
    summary: "Serve Stasis's MCP tools (sandboxes, commands, code, files) over stdio, for an MCP client to start",
    options: {},
    args: { min: 0, max: 0 },
    build: () => ({ kind: "mcp" }),
  },
];
