import { describe, expect, it } from "vitest";
import { apiError, callTool, connectToFake, ID, json, ndjson, type Route } from "../test-support/fake-daemon.js";

const FILE_INFO = { name: "x", path: "/tmp/.stasis-mcp/x", type: "file", size: 1, mode: 0o100644, mtime: "2025-01-01T00:00:00.000Z", uid: 0, gid: 0, symlinkTarget: null };
const exit = (exitCode: number, timedOut = false) => ndjson([{ type: "start", pid: 9 }, { type: "stdout", data: "out\n" }, { type: "exit", exitCode, signal: null, timedOut, durationMs: 5 }]);

/** The runner's calls: write the code, run it, read the wrapper's results (answered by `results`), remove them. */
function sandboxWith(results: Route, run: Route = () => exit(0)): Record<string, Route> {
  return {
    // A sandbox of a template without the code interpreter: the runner falls back to commands.
    [`POST /v1/sandboxes/${ID}/code/run`]: () => apiError("code_interpreter_unavailable", "nothing listens on the code interpreter's port", 409),
    [`PUT /v1/sandboxes/${ID}/files`]: () => json(FILE_INFO),
    [`POST /v1/sandboxes/${ID}/commands/stream`]: run,
    [`GET /v1/sandboxes/${ID}/files`]: results,
    [`DELETE /v1/sandboxes/${ID}/files`]: () => new Response(null, { status: 204 }),
  };
}

describe("runCodeWithCommands (the default runner)", () => {
  it("runs Python through the wrapper and returns its results and exception", async () => {
    let command: unknown = null;
    const { client, calls } = await connectToFake(
      sandboxWith(
        () => json({ results: [{ isMainResult: true, text: "2" }], error: { name: "ValueError", value: "v", traceback: "tb" } }),
        async (_url, init) => {
          command = JSON.parse(String(init.body));
          return exit(0);
        },
      ),
    );
    const out = (await callTool(client, "run_code", { sandboxId: ID, code: "1 + 1" })).structuredContent;
    expect(out).toMatchObject({ stdout: "out\n", results: [{ isMainResult: true, text: "2" }], error: { name: "ValueError", value: "v", traceback: "tb" } });
    const cmd = (command as { cmd: string[] }).cmd;
    expect(cmd.slice(0, 2)).toEqual(["python3", "-c"]);
    expect(cmd[3]).toMatch(/^\/tmp\/\.stasis-mcp\/[0-9a-f]{16}\.py$/);
    expect(calls.filter((c) => c.startsWith("DELETE"))).toHaveLength(1);
  });

  it("treats the wrapper's reply as untrusted: invalid JSON or shape is a note, never a crash", async () => {
    for (const reply of ["not json", JSON.stringify({ results: [{ png: 7 }], error: null })]) {
      const { client } = await connectToFake(sandboxWith(() => new Response(reply)));
      const result = await callTool(client, "run_code", { sandboxId: ID, code: "1" });
      expect(result.isError).toBeFalsy();
      expect(result.structuredContent).toMatchObject({ results: [{ text: "[results left out: the runner's reply was not valid]" }], error: null });
    }
  });

  it("no results file (the interpreter died) and a timeout are the run's error, with the output", async () => {
    const { client } = await connectToFake(sandboxWith(() => apiError("file_not_found", "no such file", 404), () => exit(137)));
    expect((await callTool(client, "run_code", { sandboxId: ID, code: "1" })).structuredContent).toMatchObject({
      stdout: "out\n",
      error: { name: "RunnerError", value: "the Python run ended without its results (exit code 137): see stderr" },
    });
    const slow = await connectToFake(sandboxWith(() => json({ results: [], error: null }), () => exit(137, true)));
    expect((await callTool(slow.client, "run_code", { sandboxId: ID, code: "1", timeoutMs: 50 })).structuredContent).toMatchObject({ error: { name: "TimeoutError" } });
  });

  it("runs bash and JavaScript as programs (a non-zero exit is the error), and refuses TypeScript", async () => {
    let command: string[] = [];
    const { client } = await connectToFake(
      sandboxWith(
        () => json({}),
        async (_url, init) => {
          command = (JSON.parse(String(init.body)) as { cmd: string[] }).cmd;
          return exit(2);
        },
      ),
    );
    const bash = await callTool(client, "run_code", { sandboxId: ID, code: "exit 2", language: "bash" });
    expect(command[2]).toMatch(/^bash '\/tmp\/\.stasis-mcp\/[0-9a-f]{16}\.sh'; rc=\$\?; rm -f /);
    expect(bash.structuredContent).toMatchObject({ error: { name: "ExitError", value: "exited with code 2" } });
    await callTool(client, "run_code", { sandboxId: ID, code: "process.exit(2)", language: "javascript" });
    expect(command[2]).toMatch(/^node '\/tmp\/\.stasis-mcp\/[0-9a-f]{16}\.js'/);
    const ts = await callTool(client, "run_code", { sandboxId: ID, code: "1", language: "typescript" });
    expect(ts.isError).toBe(true);
    expect(ts.content).toEqual([{ type: "text", text: expect.stringMatching(/^error \[invalid_request\]: typescript needs a sandbox of the code-interpreter template/) as unknown }]);
  });
});
