import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodeInterpreterFailedError, ContextNotFoundError, ProtocolError } from "./errors.js";
import { Sandbox } from "./sandbox.js";
import { sandboxResource, sendJson, sendNdjson, startFakeDaemon, type FakeDaemon, type RecordedRequest } from "./test-support/fake-daemon.js";

const ID = "sbx_0123456789abcdef";
const CTX = "6a0c212b-c430-4809-a2e8-eacc07f25e6c";

describe("sandbox.code", () => {
  let daemon: FakeDaemon;
  let sandbox: Sandbox;
  const seen: RecordedRequest[] = [];

  beforeAll(async () => {
    daemon = await startFakeDaemon(async (req, res) => {
      const path = req.url.pathname.slice(`/v1/sandboxes/${ID}`.length);
      if (path === "") return sendJson(res, 200, sandboxResource(ID));
      seen.push(req);
      if (path === "/code/run") {
        const body = JSON.parse(req.body.toString()) as { code: string };
        if (body.code === "ok") {
          return sendNdjson(res, [
            { type: "stdout", text: "hi\n" },
            { type: "result", result: { isMainResult: false, png: "iVBO" } },
            { type: "result", result: { isMainResult: true, text: "42", data: { columns: ["a"], index: [0], data: [[1]] } } },
            { type: "exception", exception: { name: "ValueError", value: "boom", traceback: "Traceback" } },
            { type: "end", executionCount: 7 },
          ]);
        }
        if (body.code === "dies") return sendNdjson(res, [{ type: "stdout", text: "partial" }, { type: "error", error: { code: "code_interpreter_failed", message: "the server died", retryable: false } }]);
        if (body.code === "cut") return sendNdjson(res, [{ type: "stdout", text: "partial" }]);
        return sendJson(res, 404, { error: { code: "context_not_found", message: "context gone", retryable: false } });
      }
      if (path === "/code/contexts" && req.method === "POST") return sendJson(res, 201, { id: CTX, language: "javascript", cwd: "/home/user" });
      if (path === "/code/contexts") return sendJson(res, 200, { contexts: [{ id: CTX, language: "javascript", cwd: "/home/user" }] });
      res.writeHead(204);
      res.end();
    });
    sandbox = await Sandbox.connect(ID, { apiUrl: daemon.url, apiKey: "k" });
  });
  afterAll(() => daemon.close());

  it("collects a run: output, results, the exception and the count, with each callback called", async () => {
    const calls: string[] = [];
    const run = await sandbox.code.run("ok", {
      context: { id: CTX, language: "javascript", cwd: "/" },
      env: { A: "1" },
      timeoutMs: 5_000,
      onStdout: (t) => void calls.push(`out:${t}`),
      onResult: (r) => void calls.push(`result:${r.isMainResult}`),
      onError: (e) => void calls.push(`error:${e.name}`),
    });
    expect(JSON.parse(seen.at(-1)!.body.toString())).toEqual({ code: "ok", contextId: CTX, env: { A: "1" }, timeoutMs: 5_000 });
    expect(run.text).toBe("42");
    expect(run.results[0]?.png).toBe("iVBO");
    expect(run.results[1]?.data).toEqual({ columns: ["a"], index: [0], data: [[1]] });
    expect(run.error).toEqual({ name: "ValueError", value: "boom", traceback: "Traceback" });
    expect(run.executionCount).toBe(7);
    expect(run.logs).toEqual({ stdout: ["hi\n"], stderr: [] });
    expect(calls).toEqual(["out:hi\n", "result:false", "result:true", "error:ValueError"]);
  });

  it("throws the daemon's errors typed: in-band, before the stream, and a stream cut short", async () => {
    await expect(sandbox.code.run("dies")).rejects.toBeInstanceOf(CodeInterpreterFailedError);
    await expect(sandbox.code.run("unknown", { language: "python" })).rejects.toBeInstanceOf(ContextNotFoundError);
    await expect(sandbox.code.run("cut")).rejects.toBeInstanceOf(ProtocolError);
  });

  it("manages contexts by object or id", async () => {
    const ctx = await sandbox.code.createContext({ language: "javascript" });
    expect(ctx).toEqual({ id: CTX, language: "javascript", cwd: "/home/user" });
    expect(await sandbox.code.listContexts()).toEqual([ctx]);
    await sandbox.code.restartContext(ctx);
    await sandbox.code.interrupt(CTX);
    await sandbox.code.removeContext(ctx);
    expect(seen.slice(-3).map((r) => `${r.method} ${r.url.pathname.slice(`/v1/sandboxes/${ID}`.length)}`)).toEqual([
      `POST /code/contexts/${CTX}/restart`,
      `POST /code/contexts/${CTX}/interrupt`,
      `DELETE /code/contexts/${CTX}`,
    ]);
  });
});
