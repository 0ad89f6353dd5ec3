import { describe, expect, it } from "vitest";
import type { CodeEvent } from "@stasis/protocol";
import { ApiError } from "../../errors/api-error.js";
import { MAX_CODE_LINE_BYTES, readRun } from "./run-stream.js";

async function* chunks(...parts: (string | Buffer)[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.isBuffer(p) ? p : Buffer.from(p);
}

async function collect(body: AsyncIterable<Buffer>): Promise<{ events: CodeEvent[]; error: unknown }> {
  const events: CodeEvent[] = [];
  try {
    for await (const e of readRun(body)) events.push(e);
    return { events, error: null };
  } catch (error) {
    return { events, error };
  }
}

const line = (o: object) => `${JSON.stringify(o)}\n`;

describe("a code run's stream from the sandbox's interpreter", () => {
  it("turns E2B's wire lines into Stasis events, split across chunks anywhere", async () => {
    const wire =
      line({ type: "stdout", text: "hi\n", timestamp: 1 }) +
      line({ type: "result", is_main_result: true, text: "42", png: "iVBO", data: { columns: ["a"], data: [[1]] }, extra: { "text/x": "y" } }) +
      line({ type: "error", name: "ZeroDivisionError", value: "division by zero", traceback: "Traceback..." }) +
      line({ type: "number_of_executions", execution_count: 3 }) +
      line({ type: "end_of_execution" });
    const { events, error } = await collect(chunks(wire.slice(0, 7), wire.slice(7, 50), wire.slice(50)));
    expect(error).toBeNull();
    expect(events).toEqual([
      { type: "stdout", text: "hi\n" },
      { type: "result", result: { isMainResult: true, text: "42", png: "iVBO", data: { columns: ["a"], data: [[1]] }, extra: { "text/x": "y" } } },
      { type: "exception", exception: { name: "ZeroDivisionError", value: "division by zero", traceback: "Traceback..." } },
      { type: "end", executionCount: 3 },
    ]);
  });

  it("stops reading at the end of the run, whatever follows", async () => {
    const { events, error } = await collect(chunks(line({ type: "end_of_execution" }) + "garbage that is never read\n"));
    expect(error).toBeNull();
    expect(events).toEqual([{ type: "end", executionCount: null }]);
  });

  it.each([
    ["a line that is not JSON", "{nope\n", /not JSON/],
    ["an unknown event type", line({ type: "launch_missiles" }), /malformed event/],
    ["a field of the wrong type", line({ type: "stdout", text: 42 }), /malformed event/],
    ["a negative execution count", line({ type: "number_of_executions", execution_count: -1 }), /malformed event/],
  ])("abandons the run on %s, after the valid events before it", async (_what, bad, message) => {
    const { events, error } = await collect(chunks(line({ type: "stdout", text: "before" }), bad, line({ type: "end_of_execution" })));
    expect(events).toEqual([{ type: "stdout", text: "before" }]);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).code).toBe("code_interpreter_failed");
    expect((error as ApiError).message).toMatch(message);
  });

  it("refuses a line over the bound without buffering it", async () => {
    const piece = Buffer.alloc(4 * 1024 * 1024, 0x61);
    const parts = Array.from({ length: MAX_CODE_LINE_BYTES / piece.length + 1 }, () => piece);
    const { error } = await collect(chunks(...parts, "\n", line({ type: "end_of_execution" })));
    expect((error as ApiError).code).toBe("code_interpreter_failed");
    expect((error as ApiError).message).toMatch(/bound/);
  });

  it("fails a stream that ends before the end of the run (the server died)", async () => {
    const { events, error } = await collect(chunks(line({ type: "stdout", text: "partial" })));
    expect(events).toEqual([{ type: "stdout", text: "partial" }]);
    expect((error as ApiError).code).toBe("code_interpreter_failed");
    expect((error as ApiError).message).toMatch(/early/);
  });
});
