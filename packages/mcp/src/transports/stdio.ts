import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { createStasisMcpServer, type StasisMcpOptions } from "../server.js";

/**
 * Serves the tools on stdin/stdout until stdin ends (the client closed it). Stdout carries only the
 * protocol; anything else must go to stderr.
 */
export async function serveStdio(options: StasisMcpOptions, io: { stdin: NodeJS.ReadableStream; stdout: NodeJS.WritableStream } = { stdin: process.stdin, stdout: process.stdout }): Promise<void> {
  const server = createStasisMcpServer(options);
  const transport = new StdioServerTransport(io.stdin as never, io.stdout as never);
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    io.stdin.once("end", () => resolve());
    io.stdin.once("close", () => resolve());
  });
  await server.connect(transport);
  await closed;
  await server.close();
}
