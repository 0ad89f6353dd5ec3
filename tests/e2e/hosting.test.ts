import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox, Templates } from "@stasis/sdk";
import { REPO, startTestDaemon, type TestDaemon } from "./harness.js";

/**
 * The hosting examples: snapshot templates whose start command is a web app and an MCP server, each served
 * at its sandbox's preview URL, asleep when idle and woken by the next request.
 */
describe("hosting a web app and an MCP server from snapshot templates", () => {
  let daemon: TestDaemon;
  const made: Sandbox[] = [];
  const tag = Math.random().toString(36).slice(2, 8);

  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await Promise.all(made.map((s) => s.kill().catch(() => {})));
    for (const name of [`web-${tag}`, `mcp-${tag}`]) await fetch(`${daemon.url}/v1/templates/${name}`, { method: "DELETE", headers: { authorization: `Bearer ${daemon.apiKey}` } }).catch(() => {});
    await daemon?.destroy();
  });

  const hosted = async (example: string) => {
    await Templates.build({ context: `${REPO}/examples/templates/${example}`, name: `${example}-${tag}`, ...daemon.conn });
    const s = await Sandbox.create({ template: `${example}-${tag}`, ...daemon.conn });
    made.push(s);
    expect(s.info.createdVia).toBe("snapshot");
    await s.setPreview({ public: true });
    return { sandbox: s, url: await s.getUrl(8000) };
  };

  it("serves the web app at its URL, and again once the sandbox hibernated", async () => {
    const { sandbox, url } = await hosted("web");
    expect(await (await fetch(`${url}/`)).text()).toBe("hello from the template\n");
    await sandbox.hibernate();
    expect(await (await fetch(`${url}/`)).text()).toBe("hello from the template\n");
    expect((await sandbox.refresh()).state).toBe("running");
  }, 240_000);

  it("answers MCP over Streamable HTTP, keeping its memory across a hibernation", async () => {
    const { sandbox, url } = await hosted("mcp");
    let id = 0;
    const rpc = async (method: string, params?: object) => {
      const res = await fetch(`${url}/mcp`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, ...(params ? { params } : {}) }) });
      return (await res.json()) as { result?: { content?: { text: string }[]; tools?: { name: string }[]; serverInfo?: object }; error?: object };
    };
    expect((await rpc("initialize", { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "e2e", version: "1" } })).result?.serverInfo).toBeDefined();
    expect((await rpc("tools/list")).result?.tools?.map((t) => t.name)).toEqual(["add", "remember", "recall"]);
    expect((await rpc("tools/call", { name: "add", arguments: { a: 2, b: 3 } })).result?.content?.[0]?.text).toBe("5");
    await rpc("tools/call", { name: "remember", arguments: { note: "before the nap" } });
    await sandbox.hibernate();
    expect((await rpc("tools/call", { name: "recall", arguments: {} })).result?.content?.[0]?.text).toBe("before the nap");
  }, 240_000);
});
