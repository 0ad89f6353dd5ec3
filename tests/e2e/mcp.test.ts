import { request } from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, startTestDaemon, type TestDaemon } from "./harness.js";

// The MCP server with the MCP SDK's own client, over both transports: `stasis mcp` (stdio) and the
// daemon's /mcp (Streamable HTTP). crun sandboxes: the runtime does not matter here.

const TOOLS = [
  "create_sandbox", "list_sandboxes", "pause_sandbox", "hibernate_sandbox", "resume_sandbox", "fork_sandbox", "kill_sandbox",
  "run_command", "run_code", "get_port_url", "read_file", "write_file", "list_files",
];

/** A 2x2 red PNG made with the standard library only (matplotlib is not in the base template), shown as IPython shows plots. */
const PLOT = `
import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
class Plot:
    def _repr_png_(self):
        raw = b"".join(b"\\x00" + b"\\xff\\x00\\x00" * 2 for _ in range(2))
        return b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
print("six times seven is", 6 * 7)
Plot()
`;

let daemon: TestDaemon;

beforeAll(async () => {
  daemon = await startTestDaemon({ STASIS_DEFAULT_RUNTIME: "crun" });
});

afterAll(async () => {
  await daemon?.destroy();
});

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** An MCP client of the daemon's /mcp, with the API key. */
async function httpClient(): Promise<Client> {
  const client = new Client({ name: "stasis-e2e", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${daemon.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${daemon.apiKey}` } } }));
  return client;
}

function text(result: CallToolResult): string {
  return result.content.flatMap((c) => (c.type === "text" ? [c.text] : [])).join("\n");
}

/** What both transports must show: tools, a sandbox, Python with a PNG back, a file written and read, kill, a clear error. */
async function scenario(client: Client): Promise<void> {
  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name).sort()).toEqual([...TOOLS].sort());
  for (const tool of tools) {
    expect(tool.inputSchema.type).toBe("object");
    expect(tool.outputSchema?.type, tool.name).toBe("object");
    expect(JSON.stringify(tool.inputSchema), tool.name).not.toContain("$ref");
  }

  const created = await call(client, "create_sandbox", { runtime: "crun", memoryMiB: 256 });
  expect(created.isError, text(created)).toBeFalsy();
  const id = (created.structuredContent as { sandbox: { id: string; state: string } }).sandbox.id;
  expect((created.structuredContent as { sandbox: { state: string } }).sandbox.state).toBe("running");

  try {
    const ran = await call(client, "run_code", { sandboxId: id, code: PLOT });
    expect(ran.isError, text(ran)).toBeFalsy();
    const out = ran.structuredContent as { stdout: string; error: unknown; results: { isMainResult: boolean; imageIndex: number | null; formats: string[] }[] };
    expect(out.stdout).toBe("six times seven is 42\n");
    expect(out.error).toBeNull();
    expect(out.results).toHaveLength(1);
    expect(out.results[0]).toMatchObject({ isMainResult: true, formats: expect.arrayContaining(["png"]) as unknown });
    const image = ran.content[out.results[0]!.imageIndex!];
    expect(image?.type).toBe("image");
    if (image?.type !== "image") throw new Error("no image");
    expect(image.mimeType).toBe("image/png");
    const png = Buffer.from(image.data, "base64");
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBe(2); // IHDR width

    const failed = await call(client, "run_code", { sandboxId: id, code: "x = 1\n1 / 0" });
    expect(failed.isError).toBeFalsy();
    expect((failed.structuredContent as { error: { name: string } }).error.name).toBe("ZeroDivisionError");

    const written = await call(client, "write_file", { sandboxId: id, path: "/work/notes/hello.txt", content: "hello from MCP\n" });
    expect(written.isError, text(written)).toBeFalsy();
    expect(written.structuredContent).toMatchObject({ path: "/work/notes/hello.txt", size: 15 });
    const read = await call(client, "read_file", { sandboxId: id, path: "/work/notes/hello.txt" });
    expect(read.structuredContent).toMatchObject({ encoding: "utf8", content: "hello from MCP\n", truncated: false });
    expect(text(read)).toBe("hello from MCP\n");

    const listed = await call(client, "list_files", { sandboxId: id, path: "/work/notes" });
    expect((listed.structuredContent as { entries: { path: string }[] }).entries.map((e) => e.path)).toEqual(["/work/notes/hello.txt"]);

    const command = await call(client, "run_command", { sandboxId: id, command: "cat /work/notes/hello.txt; echo oops >&2; exit 3" });
    expect(command.structuredContent).toMatchObject({ exitCode: 3, stdout: "hello from MCP\n", stderr: "oops\n", truncated: false });

    // A client that gives up on a call stops its command (stdio: the cancel notification; HTTP: the closed request).
    const cancelled = client.callTool({ name: "run_command", arguments: { sandboxId: id, command: "sleep 300" } }, undefined, { signal: AbortSignal.timeout(1500) });
    await expect(cancelled).rejects.toThrow();
    let sleeping = "";
    for (let i = 0; i < 50; i++) {
      const ps = await call(client, "run_command", { sandboxId: id, command: "pgrep -x sleep || echo none" });
      sleeping = (ps.structuredContent as { stdout: string }).stdout.trim();
      if (sleeping === "none") break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(sleeping).toBe("none");
  } finally {
    const killed = await call(client, "kill_sandbox", { sandboxId: id });
    expect(killed.isError, text(killed)).toBeFalsy();
  }

  const gone = await call(client, "run_command", { sandboxId: id, command: "true" });
  expect(gone.isError).toBe(true);
  expect(text(gone)).toMatch(/^error \[sandbox_not_found\]: /);
}

describe("MCP over stdio (stasis mcp)", () => {
  it("lists tools, creates a sandbox, runs Python with a PNG back, writes and reads a file, kills it", async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "mcp"],
      env: { ...(process.env as Record<string, string>), STASIS_API_URL: daemon.url, STASIS_API_KEY: daemon.apiKey },
      stderr: "pipe",
    });
    const client = new Client({ name: "stasis-e2e", version: "1.0.0" });
    await client.connect(transport);
    try {
      await scenario(client);
    } finally {
      await client.close();
    }
  });
});

/** A raw request to /mcp with chosen headers (the SDK client always sends the right ones). */
function raw(headers: Record<string, string>, method = "POST"): Promise<number> {
  const url = new URL(`${daemon.url}/mcp`);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: "/mcp", method, headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } };
    req.end(method === "POST" ? JSON.stringify(initialize) : undefined);
  });
}

describe("MCP over Streamable HTTP (/mcp on the daemon)", () => {
  it("lists tools, creates a sandbox, runs Python with a PNG back, writes and reads a file, kills it", async () => {
    const client = await httpClient();
    try {
      await scenario(client);
    } finally {
      await client.close();
    }
  });

  it("runs code in a code-interpreter sandbox's kernel: variables persist between calls, a matplotlib plot comes back as a PNG", async () => {
    const client = await httpClient();
    try {
      const created = await call(client, "create_sandbox", { template: "code-interpreter", runtime: "gvisor" });
      expect(created.isError, text(created)).toBeFalsy();
      const id = (created.structuredContent as { sandbox: { id: string } }).sandbox.id;
      try {
        const plotted = await call(client, "run_code", { sandboxId: id, code: "import matplotlib.pyplot as plt\nx = 41\nplt.plot([1, 3, 2])\nplt.show()" });
        expect(plotted.isError, text(plotted)).toBeFalsy();
        const image = plotted.content.find((c) => c.type === "image");
        if (image?.type !== "image") throw new Error(`no image in ${text(plotted)}`);
        expect(image.mimeType).toBe("image/png");
        const png = Buffer.from(image.data, "base64");
        expect(png.subarray(1, 4).toString()).toBe("PNG");
        expect(png.length).toBeGreaterThan(5_000);
        const next = await call(client, "run_code", { sandboxId: id, code: "x + 1" });
        expect((next.structuredContent as { results: { isMainResult: boolean }[] }).results[0]?.isMainResult).toBe(true);
        expect(text(next)).toContain("42");
      } finally {
        await call(client, "kill_sandbox", { sandboxId: id });
      }
    } finally {
      await client.close();
    }
  });

  it("pauses, resumes, hibernates and forks a gVisor sandbox, lists it and gives its port's URL; crun cannot hibernate", async () => {
    const client = await httpClient();
    const ids: string[] = [];
    const state = (r: CallToolResult) => (r.structuredContent as { state: string }).state;
    try {
      const created = await call(client, "create_sandbox", { runtime: "gvisor", memoryMiB: 256 });
      const id = (created.structuredContent as { sandbox: { id: string } }).sandbox.id;
      ids.push(id);
      const listed = await call(client, "list_sandboxes", { state: "running" });
      expect((listed.structuredContent as { sandboxes: { id: string }[] }).sandboxes.map((s) => s.id)).toContain(id);
      const url = await call(client, "get_port_url", { sandboxId: id, port: 8000, signed: true });
      expect(url.structuredContent).toMatchObject({ url: expect.stringContaining(`8000-${id}`) as unknown, public: false, signedUrl: expect.stringContaining(`8000-${id}`) as unknown });
      expect(state(await call(client, "pause_sandbox", { sandboxId: id }))).toBe("paused");
      expect(state(await call(client, "resume_sandbox", { sandboxId: id }))).toBe("running");
      await call(client, "write_file", { sandboxId: id, path: "/root/kept.txt", content: "kept" });
      expect(state(await call(client, "hibernate_sandbox", { sandboxId: id }))).toBe("hibernated");
      const forked = await call(client, "fork_sandbox", { sandboxId: id });
      expect(forked.isError, text(forked)).toBeFalsy();
      const fork = (forked.structuredContent as { sandboxes: { id: string; forkedFrom: string }[] }).sandboxes[0]!;
      ids.push(fork.id);
      expect(fork.forkedFrom).toBe(id);
      expect(text(await call(client, "read_file", { sandboxId: fork.id, path: "/root/kept.txt" }))).toBe("kept");

      const light = await call(client, "create_sandbox", { runtime: "crun", memoryMiB: 256 });
      const lightId = (light.structuredContent as { sandbox: { id: string } }).sandbox.id;
      ids.push(lightId);
      const refused = await call(client, "hibernate_sandbox", { sandboxId: lightId });
      expect(refused.isError).toBe(true);
      expect(text(refused)).toMatch(/^error \[not_supported_by_runtime\]: /);
    } finally {
      for (const id of ids) await call(client, "kill_sandbox", { sandboxId: id });
      await client.close();
    }
  });

  it("refuses a wrong key, a foreign Host or Origin (DNS rebinding), and GET", async () => {
    const auth = { authorization: `Bearer ${daemon.apiKey}` };
    expect(await raw({})).toBe(401);
    expect(await raw({ authorization: "Bearer wrong" })).toBe(401);
    expect(await raw({ ...auth, host: "attacker.example:80" })).toBe(403);
    expect(await raw({ ...auth, origin: "http://attacker.example" })).toBe(403);
    expect(await raw({ ...auth, host: `localhost:${new URL(daemon.url).port}` })).toBe(200);
    expect(await raw(auth, "GET")).toBe(405);
  });
});
