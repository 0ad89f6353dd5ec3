import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Sandbox } from "@stasis/sdk";
import { z } from "zod";
import { addTool, type ToolContext } from "../tool-kit.js";
import { EnvSchema, networkPolicy, RuntimeSchema, sandboxId, sandboxSummary, sandboxSummarySchema, SandboxStateSchema, summarize } from "./shapes.js";

const TEMPLATE = /^[a-z0-9][a-z0-9._-]{0,62}(:[1-9][0-9]{0,8})?$/;

/** create, list, pause, hibernate, resume, fork, kill: the sandbox lifecycle. */
export function addSandboxTools(server: McpServer, ctx: ToolContext): void {
  const conn = ctx.connection;

  addTool(server, {
    name: "create_sandbox",
    title: "Create a sandbox",
    description:
      "Creates an isolated Linux sandbox (gVisor by default) and returns once it runs. It pauses on its own when idle and wakes on the next call, so keep its id and reuse it. Kill it when done.",
    input: {
      template: z.string().regex(TEMPLATE).optional().describe("Template name, optionally name:version (default: base, Debian with Python 3 and Node)."),
      runtime: RuntimeSchema.optional().describe("gvisor (default, strongest isolation; can hibernate and fork) or crun (lighter container)."),
      cpu: z.number().min(0.1).max(64).optional().describe("CPU cores (default: the template's, else 1)."),
      memoryMiB: z.number().int().min(64).max(256 * 1024).optional().describe("Memory in MiB (default: the template's, else 512)."),
      diskMiB: z.number().int().min(256).max(1024 * 1024).optional().describe("Writable disk in MiB (default: the template's, else 4096)."),
      timeoutMs: z.number().int().min(1000).max(7 * 24 * 3600 * 1000).optional().describe("Lifetime of running time in ms (default 300000)."),
      env: EnvSchema.optional().describe("Environment variables for every command."),
      network: networkPolicy.optional().describe("What the sandbox may reach; default: the daemon's policy."),
    },
    output: { sandbox: sandboxSummarySchema },
    annotations: { destructiveHint: false, openWorldHint: true },
    run: async (args) => {
      const sandbox = await Sandbox.create({ ...args, ...conn });
      return { structured: { sandbox: summarize(sandbox.info) } };
    },
  });

  addTool(server, {
    name: "list_sandboxes",
    title: "List sandboxes",
    description: "Lists sandboxes, newest first, one page at a time.",
    input: {
      state: SandboxStateSchema.optional().describe("Only sandboxes in this state."),
      limit: z.number().int().min(1).max(200).optional().describe("Page size (default 50)."),
      cursor: z.string().max(256).optional().describe("nextCursor of the previous page."),
    },
    output: { sandboxes: z.array(sandboxSummarySchema), nextCursor: z.string().nullable() },
    annotations: { readOnlyHint: true },
    run: async ({ state, limit, cursor }) => {
      const page = await Sandbox.list({ ...(state ? { state } : {}), limit: limit ?? 50, ...(cursor ? { cursor } : {}) }, conn);
      return { structured: { sandboxes: page.sandboxes.map(summarize), nextCursor: page.nextCursor } };
    },
  });

  const standby = [
    ["pause_sandbox", "Pause a sandbox", "Freezes the sandbox in memory: no CPU, processes and files kept. Any later call wakes it in milliseconds.", (s: Sandbox) => s.pause()],
    ["hibernate_sandbox", "Hibernate a sandbox", "Checkpoints the sandbox to disk: no CPU, no memory; memory, processes and files come back on the next call. gVisor sandboxes only.", (s: Sandbox) => s.hibernate()],
    ["resume_sandbox", "Resume a sandbox", "Wakes a paused or hibernated sandbox ahead of time (commands and file calls wake it anyway).", (s: Sandbox) => s.resume()],
  ] as const;
  for (const [name, title, description, call] of standby) {
    addTool(server, {
      name,
      title,
      description,
      input: { sandboxId },
      output: sandboxSummary,
      annotations: { idempotentHint: true, destructiveHint: false },
      run: async ({ sandboxId: id }) => ({ structured: summarize(await call(await Sandbox.connect(id, conn))) }),
    });
  }

  addTool(server, {
    name: "fork_sandbox",
    title: "Fork a sandbox",
    description: "Makes independent copies of a running sandbox's memory, processes and files; the original goes on unchanged. gVisor sandboxes only.",
    input: { sandboxId, count: z.number().int().min(1).max(16).optional().describe("How many copies (default 1).") },
    output: { sandboxes: z.array(sandboxSummarySchema) },
    annotations: { destructiveHint: false },
    run: async ({ sandboxId: id, count }) => {
      const forks = await (await Sandbox.connect(id, conn)).fork(count ?? 1);
      return { structured: { sandboxes: forks.map((f) => summarize(f.info)) } };
    },
  });

  addTool(server, {
    name: "kill_sandbox",
    title: "Kill a sandbox",
    description: "Kills the sandbox and deletes it with its files. This cannot be undone.",
    input: { sandboxId },
    output: { killed: z.string() },
    annotations: { destructiveHint: true, idempotentHint: false },
    run: async ({ sandboxId: id }) => {
      await Sandbox.kill(id, conn);
      return { structured: { killed: id } };
    },
  });
}
