import type { CodeEvent } from "@stasis/protocol";
import { ApiError } from "../../errors/api-error.js";
import { LineSplitter } from "../../runtime/line-splitter.js";
import { toCodeEvent, WireEventSchema, type WireEvent } from "./code-wire.js";

/** One line of a run (a PNG chart is base64 in one line): bigger is refused, never buffered. */
export const MAX_CODE_LINE_BYTES = 32 * 1024 * 1024;

/**
 * A run's NDJSON body from the sandbox's interpreter as Stasis events, ending with `end` (the execution
 * count). Pulled as the API's client reads, so a slow client slows the read. A line that is not JSON,
 * fails its schema or passes the size bound abandons the run (code_interpreter_failed); so does a
 * stream that stops before `end_of_execution`.
 */
export async function* readRun(body: AsyncIterable<Buffer>): AsyncGenerator<CodeEvent> {
  let count: number | null = null;
  const pending: WireEvent[] = [];
  const state: { refused: string | null } = { refused: null };
  const splitter = new LineSplitter(
    MAX_CODE_LINE_BYTES,
    (line) => {
      if (state.refused) return;
      let value: unknown;
      try {
        value = JSON.parse(line.toString("utf8"));
      } catch {
        state.refused = "a line that is not JSON";
        return;
      }
      const parsed = WireEventSchema.safeParse(value);
      if (parsed.success) pending.push(parsed.data);
      else state.refused = `a malformed event (${parsed.error.issues[0]?.message ?? "invalid"})`;
    },
    (bytes) => {
      state.refused = `a line of ${bytes} bytes or more (the bound is ${MAX_CODE_LINE_BYTES})`;
    },
  );
  for await (const chunk of body) {
    splitter.push(chunk);
    // Events parsed before a bad line still go out: they were valid, and show how far the run got.
    while (pending.length > 0) {
      const e = pending.shift()!;
      if (e.type === "number_of_executions") count = e.execution_count;
      if (e.type === "end_of_execution") {
        yield { type: "end", executionCount: count };
        return;
      }
      const event = toCodeEvent(e);
      if (event) yield event;
    }
    if (state.refused) throw new ApiError("code_interpreter_failed", `the code interpreter sent ${state.refused}; the run was abandoned`);
  }
  throw new ApiError("code_interpreter_failed", "the code interpreter ended the run's stream early (did its server die?)");
}
