import { randomBytes } from "node:crypto";
import { FileNotFoundError } from "@stasis/sdk";
import { z } from "zod";
import { HeadTail, readUpTo } from "../bounds.js";
import { ToolInputError } from "../errors.js";
import type { CodeRunner, CodeRunOutput, CodeRunRequest } from "./code-runner.js";
import { PYTHON_WRAPPER } from "./python-wrapper.js";

const WORK_DIR = "/tmp/.stasis-mcp";

/** What the Python wrapper writes; it runs inside the sandbox, so it is checked like any untrusted reply. */
const WrapperReplySchema = z.object({
  results: z.array(
    z.object({
      isMainResult: z.boolean(),
      text: z.string().optional(),
      png: z.string().optional(),
      jpeg: z.string().optional(),
      svg: z.string().optional(),
      html: z.string().optional(),
      markdown: z.string().optional(),
    }),
  ),
  error: z.object({ name: z.string(), value: z.string(), traceback: z.string() }).nullable(),
});

/** Single-quoted for /bin/sh. */
function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * Runs code as a command in any sandbox (Python 3, Node and bash are in the base template): Python through
 * a notebook-like wrapper that returns rich results (PNG among them), JavaScript and bash as plain programs.
 */
export const runCodeWithCommands: CodeRunner = async (request: CodeRunRequest): Promise<CodeRunOutput> => {
  const { sandbox, code, language, timeoutMs, signal } = request;
  if (language === "typescript") throw new ToolInputError("typescript needs a sandbox of the code-interpreter template; use javascript, python or bash here");
  const name = randomBytes(8).toString("hex");
  const file = `${WORK_DIR}/${name}.${{ python: "py", javascript: "js", bash: "sh" }[language]}`;
  const resultsFile = `${WORK_DIR}/${name}.json`;
  await sandbox.files.write(file, code, { signal });
  const command =
    language === "python"
      ? ["python3", "-c", PYTHON_WRAPPER, file, resultsFile, String(request.maxResultBytes), String(request.maxOutputChars)]
      : // The file goes once the program ends (the Python wrapper removes its own once read).
        ["/bin/sh", "-c", `${language === "bash" ? "bash" : "node"} ${quote(file)}; rc=$?; rm -f ${quote(file)}; exit $rc`];
  const stdout = new HeadTail(request.maxOutputChars);
  const stderr = new HeadTail(request.maxOutputChars);
  let exit: { exitCode: number; timedOut: boolean } | null = null;
  for await (const event of sandbox.commands.stream(command, { signal, timeoutMs, env: { PYTHONUNBUFFERED: "1" } })) {
    if (event.type === "stdout") stdout.push(event.data);
    else if (event.type === "stderr") stderr.push(event.data);
    else if (event.type === "exit") exit = { exitCode: event.exitCode, timedOut: event.timedOut };
  }
  const output: CodeRunOutput = { stdout: stdout.text(), stderr: stderr.text(), truncated: stdout.truncated || stderr.truncated, results: [], error: null };
  if (exit?.timedOut) {
    output.error = { name: "TimeoutError", value: `the run took longer than ${timeoutMs} ms and was stopped`, traceback: "" };
    return output;
  }
  if (language !== "python") {
    if (exit && exit.exitCode !== 0) output.error = { name: "ExitError", value: `exited with code ${exit.exitCode}`, traceback: "" };
    return output;
  }
  const reply = await readReply(request, resultsFile);
  if (reply === null) {
    output.error = { name: "RunnerError", value: `the Python run ended without its results (exit code ${exit?.exitCode ?? "unknown"}): see stderr`, traceback: "" };
    return output;
  }
  return { ...output, results: reply.results, error: reply.error };
};

/** The wrapper's results, bounded and checked; null when it wrote none (killed, or the interpreter failed). */
async function readReply(request: CodeRunRequest, path: string): Promise<z.output<typeof WrapperReplySchema> | null> {
  const { sandbox, signal } = request;
  let raw: { bytes: Uint8Array; cut: boolean };
  try {
    // The wrapper keeps results within the budget; text entries and JSON framing add a little.
    raw = await readUpTo(await sandbox.files.readStream(path, { signal }), request.maxResultBytes + 4 * request.maxOutputChars + 64 * 1024);
  } catch (err) {
    if (err instanceof FileNotFoundError) return null;
    throw err;
  }
  await sandbox.files.remove(path).catch(() => undefined);
  if (raw.cut) return { results: [{ isMainResult: false, text: "[results left out: larger than the limit]" }], error: null };
  try {
    return WrapperReplySchema.parse(JSON.parse(new TextDecoder().decode(raw.bytes)));
  } catch {
    return { results: [{ isMainResult: false, text: "[results left out: the runner's reply was not valid]" }], error: null };
  }
}
