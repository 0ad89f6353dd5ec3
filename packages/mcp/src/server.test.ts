import { describe, expect, it } from "vitest";
import type { CodeRunner } from "./code/code-runner.js";
import { ToolInputError } from "./errors.js";
import { apiError, callTool, connectToFake, ID, json, ndjson, SANDBOX, textOf } from "./test-support/fake-daemon.js";

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);

describe("tool errors", () => {
  it("a daemon error becomes a tool error with the registry's code and message", async () => {
    const { client } = await connectToFake({ [`GET /v1/sandboxes/${ID}`]: () => apiError("sandbox_not_found", `no sandbox ${ID}`, 404) });
    const result = await callTool(client, "run_command", { sandboxId: ID, command: "true" });
    expect(result.isError).toBe(true);
    expect(result.structuredContent).toBeUndefined();
    expect(textOf(result)).toBe(`error [sandbox_not_found]: no sandbox ${ID}`);
  });

  it("an unreachable daemon is a tool error (connection_failed), and the server goes on serving", async () => {
    const { client } = await connectToFake({
      "GET /v1/sandboxes": () => {
        throw new TypeError("fetch failed");
      },
    });
    const failed = await callTool(client, "list_sandboxes", {});
    expect(failed.isError).toBe(true);
    expect(textOf(failed)).toMatch(/^error \[connection_failed\]: /);
    expect((await client.listTools()).tools.length).toBe(13);
  });

  it("a retryable error says so", async () => {
    const { client } = await connectToFake({ "POST /v1/sandboxes": () => json({ error: { code: "capacity_exceeded", message: "the daemon runs 200 sandboxes", retryable: true } }, 429) });
    expect(textOf(await callTool(client, "create_sandbox", {}))).toBe("error [capacity_exceeded]: the daemon runs 200 sandboxes (retryable: try again)");
  });

  it("arguments are checked against the input schema, unknown ones refused, before any API call", async () => {
    const { client, calls } = await connectToFake({});
    for (const args of [{ sandboxId: "nope", command: "true" }, { sandboxId: ID, command: "true", cmd: "x" }, { sandboxId: ID, command: "true", cwd: "relative" }]) {
      const result = await callTool(client, "run_command", args);
      expect(result.isError, JSON.stringify(args)).toBe(true);
    }
    expect(calls).toEqual([]);
  });
});

describe("bounds", () => {
  it("run_command keeps the head and tail of long output and says what it left out", async () => {
    const big = "a".repeat(50_000) + "THE END";
    const { client } = await connectToFake(
      { [`POST /v1/sandboxes/${ID}/commands/stream`]: () => ndjson([{ type: "start", pid: 7 }, { type: "stdout", data: big }, { type: "stderr", data: "warn\n" }, { type: "exit", exitCode: 0, signal: null, timedOut: false, durationMs: 12 }]) },
      { limits: { maxOutputChars: 1000 } },
    );
    const result = await callTool(client, "run_command", { sandboxId: ID, command: "yes" });
    const out = result.structuredContent as { stdout: string; stderr: string; truncated: boolean; exitCode: number };
    expect(out.truncated).toBe(true);
    expect(out.stderr).toBe("warn\n");
    expect(out.stdout.startsWith("a".repeat(500))).toBe(true);
    expect(out.stdout.endsWith("THE END")).toBe(true);
    expect(out.stdout).toContain(`[... ${big.length - 1000} characters left out: the output exceeded 1000 characters ...]`);
    expect(out.stdout.length).toBeLessThan(1100);
  });

  it("read_file cuts at maxBytes with a note, and says so in the structured result", async () => {
    const { client } = await connectToFake({ [`GET /v1/sandboxes/${ID}/files`]: () => new Response("x".repeat(10_000)) });
    const result = await callTool(client, "read_file", { sandboxId: ID, path: "/log.txt", maxBytes: 100 });
    expect(result.structuredContent).toMatchObject({ encoding: "utf8", content: "x".repeat(100), bytes: 100, truncated: true });
    expect(textOf(result)).toContain("[... cut at 100 bytes: the file is longer");
  });

  it("read_file returns an image whole up to the cap, beyond the text limit", async () => {
    const image = Buffer.concat([PNG, Buffer.alloc(5000, 1)]);
    const { client } = await connectToFake({ [`GET /v1/sandboxes/${ID}/files`]: () => new Response(image) }, { limits: { maxReadBytes: 100, maxReadBytesCap: 10_000 } });
    const result = await callTool(client, "read_file", { sandboxId: ID, path: "/big.png" });
    expect(result.structuredContent).toMatchObject({ encoding: "image", bytes: image.length, truncated: false });
    expect(result.content[0]).toEqual({ type: "image", mimeType: "image/png", data: image.toString("base64") });
  });

  it("list_files returns at most maxListEntries", async () => {
    const entry = (i: number) => ({ name: `f${i}`, path: `/d/f${i}`, type: "file", size: 1, mode: 0o100644, mtime: "2025-01-01T00:00:00.000Z", uid: 0, gid: 0, symlinkTarget: null });
    const { client } = await connectToFake({ [`GET /v1/sandboxes/${ID}/files/list`]: () => json({ entries: Array.from({ length: 30 }, (_, i) => entry(i)), truncated: false }) }, { limits: { maxListEntries: 10 } });
    const out = (await callTool(client, "list_files", { sandboxId: ID, path: "/d" })).structuredContent as { entries: { mode: string }[]; truncated: boolean };
    expect(out.entries).toHaveLength(10);
    expect(out.entries[0]!.mode).toBe("644");
    expect(out.truncated).toBe(true);
  });
});

describe("content by type", () => {
  it("read_file returns an image as image content, other binary as a base64 resource", async () => {
    const binary = Buffer.from([1, 0, 2, 255]);
    const { client } = await connectToFake({ [`GET /v1/sandboxes/${ID}/files`]: (url) => new Response(url.searchParams.get("path") === "/plot.png" ? PNG : binary) });
    const image = await callTool(client, "read_file", { sandboxId: ID, path: "/plot.png" });
    expect(image.content[0]).toEqual({ type: "image", mimeType: "image/png", data: PNG.toString("base64") });
    expect(image.structuredContent).toMatchObject({ encoding: "image", mimeType: "image/png", content: null });
    const blob = await callTool(client, "read_file", { sandboxId: ID, path: "/data.bin" });
    expect(blob.content[0]).toEqual({ type: "resource", resource: { uri: `stasis://${ID}/data.bin`, mimeType: "application/octet-stream", blob: binary.toString("base64") } });
    expect(blob.structuredContent).toMatchObject({ encoding: "base64", content: binary.toString("base64") });
  });

  it("write_file sends base64 content as bytes, and refuses content that is not base64", async () => {
    let body: Uint8Array | null = null;
    const { client } = await connectToFake({
      [`PUT /v1/sandboxes/${ID}/files`]: async (url, init) => {
        body = new Uint8Array(await new Response(init.body).arrayBuffer());
        return json({ name: "p", path: url.searchParams.get("path"), type: "file", size: body.length, mode: 0o100755, mtime: "2025-01-01T00:00:00.000Z", uid: 0, gid: 0, symlinkTarget: null });
      },
    });
    const result = await callTool(client, "write_file", { sandboxId: ID, path: "/p", content: PNG.toString("base64"), encoding: "base64", mode: "755" });
    expect(result.structuredContent).toEqual({ path: "/p", size: PNG.length, mode: "755" });
    expect(Buffer.from(body!)).toEqual(PNG);
    const bad = await callTool(client, "write_file", { sandboxId: ID, path: "/p", content: "not base64!", encoding: "base64" });
    expect(textOf(bad)).toBe("error [invalid_request]: content is not base64");
  });

  it("run_code puts images in image blocks that its results point at; a runner's input error is invalid_request", async () => {
    const runner: CodeRunner = async ({ language }) => {
      if (language === "typescript") throw new ToolInputError("no typescript here");
      return { stdout: "hi\n", stderr: "", truncated: false, results: [{ isMainResult: false, text: "<Figure>", png: PNG.toString("base64") }, { isMainResult: true, text: "42" }], error: null };
    };
    const { client } = await connectToFake({}, { codeRunner: runner });
    const result = await callTool(client, "run_code", { sandboxId: ID, code: "..." });
    const out = result.structuredContent as { results: { imageIndex: number | null; formats: string[] }[] };
    expect(out.results.map((r) => r.imageIndex)).toEqual([1, null]);
    expect(out.results[0]!.formats).toEqual(["png", "text"]);
    expect(result.content[1]).toEqual({ type: "image", mimeType: "image/png", data: PNG.toString("base64") });
    expect(textOf(result)).toBe("stdout:\nhi\n\n\ndisplay (image below): <Figure>\n\nresult: 42");
    expect(textOf(await callTool(client, "run_code", { sandboxId: ID, code: "1", language: "typescript" }))).toBe("error [invalid_request]: no typescript here");
  });

  it("create_sandbox passes template, resources and network policy, and returns a summary without env", async () => {
    let sent: unknown = null;
    const { client } = await connectToFake({
      "POST /v1/sandboxes": async (_url, init) => {
        sent = JSON.parse(String(init.body));
        return json({ ...SANDBOX, env: { TOKEN: "secret" }, network: { address: "10.0.0.2", policy: { internet: false, allowOut: ["pypi.org"], denyOut: [] }, secrets: [] } }, 201);
      },
    });
    const args = { template: "base", runtime: "crun", cpu: 2, memoryMiB: 1024, network: { internet: false, allowOut: ["pypi.org"] } };
    const result = await callTool(client, "create_sandbox", args);
    expect(sent).toEqual(args);
    expect(result.structuredContent).toMatchObject({ sandbox: { id: ID, runtime: "crun", address: "10.0.0.2" } });
    expect(JSON.stringify(result)).not.toContain("secret");
  });
});
