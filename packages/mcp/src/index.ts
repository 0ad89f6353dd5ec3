export { createStasisMcpServer, type StasisMcpOptions } from "./server.js";
export { serveStdio } from "./transports/stdio.js";
export { createMcpHttpHandler, type McpHttpHandler, type McpHttpOptions } from "./transports/http.js";
export { HostCheck, defaultAllowedHosts } from "./transports/host-check.js";
export { DEFAULT_LIMITS, type ToolLimits } from "./bounds.js";
export { CODE_LANGUAGES, type CodeDisplay, type CodeLanguage, type CodeRunner, type CodeRunOutput, type CodeRunRequest } from "./code/code-runner.js";
export { runCodeWithCommands } from "./code/commands-runner.js";
export { interpreterRunner, type InterpreterExecution } from "./code/interpreter-runner.js";
export { MCP_VERSION } from "./version.js";
