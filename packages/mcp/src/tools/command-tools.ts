import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { AbsolutePathSchema, UserSchema } from "@stasis/protocol";
import { Sandbox } from "@stasis/sdk";
import { z } from "zod";
import { HeadTail } from "../bounds.js";
import { addTool, type ToolContext } from "../tool-kit.js";
import { EnvSchema, sandboxId } from "./shapes.js";

/** run_command and get_port_url. */
export function addCommandTools(server: McpServer, ctx: ToolContext): void {
  const conn = ctx.connection;

  addTool(server, {
    name: "run_command",
    title: "Run a shell command",
    description:
      "Runs a shell command line (/bin/sh -c) in the sandbox and returns its exit code and output once it ends. A non-zero exit is a result, not an error. Long output keeps its beginning and end. Wakes a paused sandbox.",
    input: {
      sandboxId,
      command: z.string().min(1).max(128 * 1024).describe("The command line, e.g. `ls -la /tmp && python3 -V`."),
      cwd: AbsolutePathSchema.optional().describe("Working directory (default: the template's, else the user's home)."),
      env: EnvSchema.optional().describe("Extra environment variables for this command."),
      user: UserSchema.optional().describe("Run as this user (default: the template's, else root)."),
      timeoutMs: z.number().int().min(1).max(3600_000).optional().describe("Kill the command after this long (default 60000)."),
    },
    output: {
      exitCode: z.number().int(),
      signal: z.string().nullable(),
      stdout: z.string(),
      stderr: z.string(),
      timedOut: z.boolean(),
      truncated: z.boolean().describe("True when output was left out (see the note inside stdout or stderr)."),
      durationMs: z.number().nullable(),
    },
    annotations: { openWorldHint: true },
    run: async ({ sandboxId: id, command, cwd, env, user, timeoutMs }, signal) => {
      const sandbox = await Sandbox.connect(id, conn);
      // Streamed, not buffered by the daemon: only the bounded head and tail are ever held here.
      const stdout = new HeadTail(ctx.limits.maxOutputChars);
      const stderr = new HeadTail(ctx.limits.maxOutputChars);
      const stream = sandbox.commands.stream(command, { signal, timeoutMs: timeoutMs ?? 60_000, ...(cwd ? { cwd } : {}), ...(env ? { env } : {}), ...(user ? { user } : {}) });
      for await (const event of stream) {
        if (event.type === "stdout") stdout.push(event.data);
        else if (event.type === "stderr") stderr.push(event.data);
        else if (event.type === "exit") {
          return {
            structured: {
              exitCode: event.exitCode,
              signal: event.signal,
              stdout: stdout.text(),
              stderr: stderr.text(),
              timedOut: event.timedOut,
              truncated: stdout.truncated || stderr.truncated,
              durationMs: event.durationMs,
            },
          };
        }
      }
      throw new Error("the command's stream ended without its exit");
    },
  });

  addTool(server, {
    name: "get_port_url",
    title: "Get a port's URL",
    description:
      "The URL at which a TCP port of the sandbox (a web server you started, say) is reachable. A private sandbox's URL needs its token; set signed to get a URL that opens in a browser without it, until it expires.",
    input: {
      sandboxId,
      port: z.number().int().min(1).max(65535),
      signed: z.boolean().optional().describe("Also return a signed URL that needs no token (default false)."),
      expiresInS: z.number().int().min(1).max(30 * 24 * 3600).optional().describe("Lifetime of the signed URL (default 3600)."),
    },
    output: {
      url: z.string(),
      public: z.boolean().describe("Whether the sandbox's ports are served without a token."),
      signedUrl: z.string().nullable(),
      signedUrlExpiresAt: z.string().nullable(),
    },
    annotations: { readOnlyHint: true },
    run: async ({ sandboxId: id, port, signed, expiresInS }) => {
      const sandbox = await Sandbox.connect(id, conn);
      const preview = await sandbox.getPreview();
      const url = preview.urlTemplate.replaceAll("{port}", String(port));
      const signedUrl = signed ? await sandbox.signUrl(port, expiresInS) : null;
      return { structured: { url, public: preview.public, signedUrl: signedUrl?.url ?? null, signedUrlExpiresAt: signedUrl?.expiresAt ?? null } };
    },
  });
}
