import type { ServerResponse } from "node:http";
import type { CommandEvent } from "@stasis/protocol";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ExecFailedError, SandboxFailedError } from "./errors.js";
import { Sandbox } from "./sandbox.js";
import { delay, sandboxResource, sendJson, startFakeDaemon, type FakeDaemon } from "./test-support/fake-daemon.js";

const ID = "sbx_0123456789abcdef";
const exit = (exitCode = 0) => JSON.stringify({ type: "exit", exitCode, signal: null, timedOut: false, durationMs: 12.5 });

/** Writes each piece as its own chunk, pausing so the client sees them as separate reads. */
async function dribble(res: ServerResponse, pieces: string[]): Promise<void> {
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  res.flushHeaders();
  for (const piece of pieces) {
    if (res.destroyed) return;
    res.write(piece);
    await delay(15);
  }
  res.end();
}

describe("command streams", () => {
  let daemon: FakeDaemon;
  let sandbox: Sandbox;
  /** Resolves when the server sees a stream's connection close before the stream ended. */
  let abortedByClient: Promise<void>;
  let markAborted: () => void;

  beforeEach(() => {
    abortedByClient = new Promise((resolve) => (markAborted = resolve));
  });

  beforeAll(async () => {
    daemon = await startFakeDaemon(async (req, res) => {
      const path = req.url.pathname.slice(`/v1/sandboxes/${ID}`.length);
      res.on("close", () => {
        if (!res.writableEnded) markAborted();
      });
      const cmd = req.body.length ? (JSON.parse(req.body.toString()) as { cmd: string }).cmd : "";
      if (path === "") return sendJson(res, 200, sandboxResource(ID));
      if (path === "/commands/stream" && cmd === "echo") {
        // The second event is split mid-line, the third shares a chunk with the exit.
        return dribble(res, ['{"type":"start","pid":9}\n{"type":"stdout","da', 'ta":"hello\\n"}\n', `{"type":"stderr","data":"warn"}\n${exit(3)}\n`]);
      }
      if (path === "/commands/stream" && cmd === "fail") {
        const error = { code: "sandbox_failed", message: "sandbox stopped: agent gone", retryable: false, requestId: "r-9" };
        return dribble(res, ['{"type":"start","pid":9}\n', '{"type":"stdout","data":"partial"}\n', `${JSON.stringify({ type: "error", error })}\n`]);
      }
      if (path === "/commands/stream" && cmd === "forever") {
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.write('{"type":"start","pid":9}\n{"type":"stdout","data":"tick"}\n');
        return; // never ends: only the client can end it
      }
      if (path === "/commands/stream") return sendJson(res, 422, { error: { code: "exec_failed", message: "no such binary", retryable: false } });
      if (path === "/processes" && req.method === "POST") return sendJson(res, 201, { pid: 42 });
      if (path === "/processes/42/stream") {
        return dribble(res, ['{"type":"start","pid":42}\n', `{"type":"stdout","data":"replay=${req.url.searchParams.get("replay")}"}\n`, `${exit(0)}\n`]);
      }
      if (path === "/processes/42/stdin" || path === "/processes/42/signal") {
        res.writeHead(204);
        return res.end();
      }
      sendJson(res, 404, { error: { code: "route_not_found", message: path, retryable: false } });
    });
    sandbox = await Sandbox.connect(ID, { apiUrl: daemon.url, apiKey: "k" });
  });
  afterAll(() => daemon.close());

  it("yields validated events across chunk boundaries", async () => {
    const events: CommandEvent[] = [];
    const stream = sandbox.commands.stream("echo", { env: { A: "1" } });
    for await (const e of stream) events.push(e);
    expect(events).toEqual([
      { type: "start", pid: 9 },
      { type: "stdout", data: "hello\n" },
      { type: "stderr", data: "warn" },
      { type: "exit", exitCode: 3, signal: null, timedOut: false, durationMs: 12.5 },
    ]);
    expect(stream.pid).toBe(9);
    expect(JSON.parse(daemon.requests.at(-1)!.body.toString())).toEqual({ env: { A: "1" }, cmd: "echo" });
  });

  it("throws an in-band error event as its typed error, after the events before it", async () => {
    const seen: string[] = [];
    const err = await (async () => {
      for await (const e of sandbox.commands.stream("fail")) seen.push(e.type);
    })().catch((e: unknown) => e);
    expect(seen).toEqual(["start", "stdout"]);
    expect(err).toBeInstanceOf(SandboxFailedError);
    expect(err).toMatchObject({ code: "sandbox_failed", status: 502, requestId: "r-9" });
  });

  it("throws an HTTP error before the stream starts as its typed error", async () => {
    await expect(sandbox.commands.run("missing", { onStdout: () => {} })).rejects.toBeInstanceOf(ExecFailedError);
  });

  it("aborts the HTTP request when the loop is left early", async () => {
    for await (const e of sandbox.commands.stream("forever")) {
      if (e.type === "stdout") break;
    }
    await expect(Promise.race([abortedByClient.then(() => "aborted"), delay(2000).then(() => "still open")])).resolves.toBe("aborted");
  });

  it("ends quietly and aborts the request when closed or disposed", async () => {
    const stream = sandbox.commands.stream("forever");
    const types: string[] = [];
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === "stdout") await stream[Symbol.asyncDispose]();
    }
    expect(types).toEqual(["start", "stdout"]);
    await abortedByClient;
  });

  it("rejects with the caller's reason when its signal aborts", async () => {
    const controller = new AbortController();
    const consume = (async () => {
      for await (const e of sandbox.commands.stream("forever", { signal: controller.signal })) {
        if (e.type === "stdout") controller.abort(new Error("caller gave up"));
      }
    })();
    await expect(consume).rejects.toThrow("caller gave up");
    await abortedByClient;
  });

  it("run() with callbacks streams live and still returns the result", async () => {
    const out: string[] = [];
    const result = await sandbox.commands.run("echo", { onStdout: (d) => out.push(d), onStderr: (d) => out.push(`err:${d}`) });
    expect(out).toEqual(["hello\n", "err:warn"]);
    expect(result).toEqual({ pid: 9, exitCode: 3, signal: null, stdout: "hello\n", stderr: "warn", truncated: false, timedOut: false, durationMs: 12.5 });
    expect(daemon.requests.at(-1)!.url.pathname).toMatch(/\/commands\/stream$/);
  });

  it("starts a background process, feeds stdin and waits via the attach stream", async () => {
    const handle = await sandbox.commands.start(["cat"], { stdin: true });
    expect(handle.pid).toBe(42);
    await handle.sendStdin("data", { eof: true });
    expect(JSON.parse(daemon.requests.at(-1)!.body.toString())).toEqual({ data: "data", eof: true });
    const result = await handle.wait();
    expect(result).toMatchObject({ pid: 42, exitCode: 0, stdout: "replay=true" });
    const replayed: string[] = [];
    for await (const e of handle.stream({ replay: false })) if (e.type === "stdout") replayed.push(e.data);
    expect(replayed).toEqual(["replay=false"]);
    await handle.signal("SIGINT");
    expect(JSON.parse(daemon.requests.at(-1)!.body.toString())).toEqual({ signal: "SIGINT" });
  });
});
