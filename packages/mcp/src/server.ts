import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ConnectionOptions } from "@stasis/sdk";
import { DEFAULT_LIMITS, type ToolLimits } from "./bounds.js";
import type { CodeRunner } from "./code/code-runner.js";
import { runCodeWithCommands } from "./code/commands-runner.js";
import { interpreterRunner } from "./code/interpreter-runner.js";
import type { ToolContext } from "./tool-kit.js";
import { addCodeTools } from "./tools/code-tools.js";
import { addCommandTools } from "./tools/command-tools.js";
import { addFileTools } from "./tools/file-tools.js";
import { addSandboxTools } from "./tools/sandbox-tools.js";
import { MCP_VERSION } from "./version.js";

export interface StasisMcpOptions {
  /** How the tools reach the daemon (the SDK's connection: URL, key). */
  connection: ConnectionOptions;
  limits?: Partial<ToolLimits>;
  /** How run_code runs code; default: the sandbox's code interpreter where it has one, else as a command. */
  codeRunner?: CodeRunner;
}

const INSTRUCTIONS =
  "Stasis runs code in isolated Linux sandboxes. Create one with create_sandbox and keep its id; run_command, run_code and the file tools act on it. " +
  "Sandboxes pause when idle and wake on the next call, so reuse them rather than making new ones. Kill a sandbox when you no longer need it. " +
  "A failed call says `error [code]: message`, the code from Stasis's error registry.";

/** One MCP server with every Stasis tool: the same tools over stdio (stasis mcp) and Streamable HTTP (/mcp). */
export function createStasisMcpServer(options: StasisMcpOptions): McpServer {
  const server = new McpServer({ name: "stasis", title: "Stasis sandboxes", version: MCP_VERSION }, { instructions: INSTRUCTIONS });
  const ctx: ToolContext = {
    connection: options.connection,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    codeRunner: options.codeRunner ?? interpreterRunner(runCodeWithCommands),
  };
  addSandboxTools(server, ctx);
  addCommandTools(server, ctx);
  addCodeTools(server, ctx);
  addFileTools(server, ctx);
  return server;
}
