import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox as E2bSandbox } from "@e2b/code-interpreter";
import { Sandbox, StasisError, type CodeResult } from "@stasis/sdk";
import { CLI, issueE2bKey, startTestDaemon, type TestDaemon } from "./harness.js";

/**
 * The code interpreter (examples/templates/code-interpreter, built by set-up as `code-interpreter`): the
 * Stasis SDK through POST /v1/sandboxes/{id}/code/run, and the unmodified @e2b/code-interpreter SDK
 * through the daemon's E2B surface to the same server on :49999. One sandbox per SDK, shared by the tests.
 */

/** A base64 PNG's size as its header says, after checking the signature; throws if it is not a PNG. */
function pngSize(base64: string): { width: number; height: number; bytes: number } {
  const png = Buffer.from(base64, "base64");
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(png.subarray(12, 16).toString("latin1")).toBe("IHDR");
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20), bytes: png.length };
}

/** The CLI with `input` on its stdin: exit code and output. */
function cli(daemon: TestDaemon, args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "--api-url", daemon.url, "--api-key", daemon.apiKey, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

const PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 2, 8])\nplt.title('stasis')\nplt.show()";
const FRAME = "import pandas as pd\npd.DataFrame({'n': [1, 2, 3], 'sq': [1, 4, 9]})";

describe("the code interpreter", () => {
  let daemon: TestDaemon;

  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon?.destroy();
  });

  describe("through the Stasis SDK", () => {
    let sbx: Sandbox;
    beforeAll(async () => {
      sbx = await Sandbox.create({ template: "code-interpreter", env: { SBX_VAR: "from create" }, ...daemon.conn });
    }, 120_000);

    it("keeps variables between runs, streams output and returns the last value with the count", async () => {
      const out: string[] = [];
      const first = await sbx.code.run("x = 41\nprint('hello')\nx + 1", { onStdout: (t) => void out.push(t) });
      expect(out).toEqual(["hello\n"]);
      expect(first.text).toBe("42");
      const second = await sbx.code.run("x * 2");
      expect(second.text).toBe("82");
      expect(second.executionCount).toBe((first.executionCount ?? 0) + 1);
    });

    it("returns a matplotlib plot as a PNG (and SVG), a DataFrame as data, display()ed HTML and JSON", async () => {
      const plot = await sbx.code.run(PLOT);
      const png = plot.results.find((r: CodeResult) => r.png)?.png;
      expect(png).toBeDefined();
      const size = pngSize(png!);
      expect(size.width).toBeGreaterThan(200);
      expect(size.height).toBeGreaterThan(200);
      expect(size.bytes).toBeGreaterThan(5_000);
      const frame = await sbx.code.run(FRAME);
      const main = frame.results.find((r) => r.isMainResult);
      expect(main?.data).toEqual({ columns: ["n", "sq"], index: [0, 1, 2], data: [[1, 1], [2, 4], [3, 9]] });
      expect(main?.html).toContain("<table");
      const rich = await sbx.code.run(
        "from IPython.display import display, HTML, JSON\nfrom matplotlib_inline.backend_inline import set_matplotlib_formats\n" +
          "display(HTML('<b>bold</b>'))\ndisplay(JSON({'a': [1, 2]}))\nset_matplotlib_formats('svg')\nplt.plot([3, 1]); plt.show()\nset_matplotlib_formats('png')",
      );
      expect(rich.results.map((r) => r.html ?? r.json ?? (r.svg ? "svg" : undefined))).toEqual(["<b>bold</b>", { a: [1, 2] }, "svg"]);
      expect(rich.results[2]?.svg).toContain("<svg");
    });

    it("reports an exception with its traceback, and per-run env vars that do not stay", async () => {
      const failed = await sbx.code.run("def f():\n    return 1 / 0\nf()");
      expect(failed.error).toMatchObject({ name: "ZeroDivisionError", value: "division by zero" });
      expect(failed.error?.traceback).toContain("return 1 / 0");
      expect((await sbx.code.run("import os; os.environ.get('RUN_VAR')", { env: { RUN_VAR: "only now" } })).text).toBe("'only now'");
      expect((await sbx.code.run("os.environ.get('RUN_VAR')")).text).toBeUndefined();
      // The sandbox's own env (from its create) reaches the code too, though the interpreter started before it.
      expect((await sbx.code.run("os.environ['SBX_VAR']")).text).toBe("'from create'");
      expect((await sbx.code.run("echo $SBX_VAR", { language: "bash" })).logs.stdout.join("")).toBe("from create\n");
    });

    it("interrupts a run past its timeout, and the context keeps its variables", async () => {
      const started = Date.now();
      const slow = await sbx.code.run("import time\nfor i in range(600):\n    time.sleep(0.1)", { timeoutMs: 1_500 });
      expect(slow.error?.name).toBe("TimeoutError");
      expect(Date.now() - started).toBeLessThan(15_000);
      expect((await sbx.code.run("x")).text).toBe("41");
      // interrupt() stops the code running in a context; a JavaScript await that never settles meets its timeout.
      const ctx = await sbx.code.createContext();
      const running = sbx.code.run("import time\ntime.sleep(60)", { context: ctx });
      await new Promise((r) => setTimeout(r, 1_000));
      await sbx.code.interrupt(ctx);
      expect((await running).error?.name).toBe("KeyboardInterrupt");
      expect((await sbx.code.run("await new Promise(() => {})", { language: "javascript", timeoutMs: 1_000 })).error?.name).toBe("TimeoutError");
    }, 60_000);

    it("keeps contexts apart, and runs JavaScript, TypeScript and bash in theirs", async () => {
      const ctx = await sbx.code.createContext({ language: "python", cwd: "/tmp" });
      const other = await sbx.code.run("x", { context: ctx });
      expect(other.error?.name).toBe("NameError");
      expect((await sbx.code.run("import os; os.getcwd()", { context: ctx })).text).toBe("'/tmp'");
      expect((await sbx.code.listContexts()).map((c) => c.id)).toContain(ctx.id);
      await sbx.code.removeContext(ctx);
      expect((await sbx.code.listContexts()).map((c) => c.id)).not.toContain(ctx.id);

      expect((await sbx.code.run("const nums = [1, 2, 3]; nums.map((n) => n * 2)", { language: "javascript" })).text).toBe("[ 2, 4, 6 ]");
      const js = await sbx.code.run("console.log('sum', nums.reduce((a, b) => a + b)); nums.length", { language: "javascript" });
      expect(js.logs.stdout).toEqual(["sum 6\n"]);
      expect(js.text).toBe("3");
      expect((await sbx.code.run("null.x", { language: "javascript" })).error?.name).toBe("TypeError");
      expect((await sbx.code.run("const n: number = 7; n * 6", { language: "typescript" })).text).toBe("42");
      await sbx.code.run("cd /tmp && COUNT=3", { language: "bash" });
      expect((await sbx.code.run("echo $COUNT $(pwd)", { language: "bash" })).logs.stdout.join("")).toBe("3 /tmp\n");
      // A bash cell past its timeout stops where it was (the rest of the cell does not run); the shell stays.
      const slow = await sbx.code.run("sleep 30; echo after", { language: "bash", timeoutMs: 1_500 });
      expect(slow.error?.name).toBe("TimeoutError");
      expect(slow.logs.stdout).toEqual([]);
      expect((await sbx.code.run("echo $COUNT", { language: "bash" })).logs.stdout.join("")).toBe("3\n");
    });

    it("keeps a variable across a pause and a hibernation of the sandbox", async () => {
      await sbx.code.run("kept = 'through the nap'");
      await sbx.pause();
      expect((await sbx.code.run("kept")).text).toBe("'through the nap'");
      await sbx.hibernate();
      expect((await sbx.refresh()).state).toBe("hibernated");
      expect((await sbx.code.run("kept + '!'")).text).toBe("'through the nap!'");
    }, 120_000);

    it("runs code from the CLI: stasis run-code ID -l LANG < file", async () => {
      const ok = await cli(daemon, ["run-code", sbx.id, "-l", "python"], "print('from the cli')\nx + 1\n");
      expect(ok).toMatchObject({ code: 0, stdout: "from the cli\n42\n" });
      const failed = await cli(daemon, ["run-code", sbx.id], "1 / 0\n");
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain("ZeroDivisionError");
      const js = await cli(daemon, ["run-code", sbx.id, "-l", "javascript"], "[1, 2].length");
      expect(js).toMatchObject({ code: 0, stdout: "2\n" });
    }, 30_000);

    it("answers clear errors: an unknown context, and a sandbox without an interpreter", async () => {
      const unknown = await sbx.code.run("1", { context: "00000000-0000-4000-8000-000000000000" }).catch((e: unknown) => e);
      expect((unknown as StasisError).code).toBe("context_not_found");
      const plain = await Sandbox.create({ template: "base", ...daemon.conn });
      try {
        const none = await plain.code.run("1").catch((e: unknown) => e);
        expect((none as StasisError).code).toBe("code_interpreter_unavailable");
      } finally {
        await plain.kill();
      }
    }, 60_000);

    it("sends run after run on one kept connection into the sandbox, and its server still answers HTTP/1.0 and chunked requests", async () => {
      for (let i = 0; i < 3; i++) expect((await sbx.code.run("6 * 7")).text).toBe("42");
      // Established connections to the interpreter's port (49999 = C34F), as the sandbox's stack sees them: the daemon's one.
      const tcp = (await sbx.commands.run("cat /proc/net/tcp")).stdout;
      expect(tcp.split("\n").filter((l) => /^\s*\d+: [0-9A-F]+:C34F [0-9A-F]+:[0-9A-F]+ 01 /.test(l))).toHaveLength(1);
      const old = await sbx.commands.run(`curl -s -i --http1.0 -d '{"code": "1 + 1"}' http://127.0.0.1:49999/execute`);
      expect(old.stdout).toMatch(/^HTTP\/1\.1 200[\s\S]*Connection: close[\s\S]*"text": "2"[\s\S]*"end_of_execution"/);
      const chunked = await sbx.commands.run(`curl -s -H 'Transfer-Encoding: chunked' -d '{"code": "2 + 2"}' http://127.0.0.1:49999/execute`);
      expect(chunked.stdout).toMatch(/"text": "4"[\s\S]*"end_of_execution"/);
    }, 60_000);
  });

  describe("through the unmodified @e2b/code-interpreter SDK", () => {
    let sbx: E2bSandbox;
    beforeAll(async () => {
      const key = await issueE2bKey(daemon, "code");
      // The SDK's default template, code-interpreter-v1, is Stasis's code-interpreter.
      sbx = await E2bSandbox.create({ apiKey: key, apiUrl: daemon.url, sandboxUrl: daemon.url, timeoutMs: 300_000, envs: { FROM_CREATE: "set at create" } });
    }, 120_000);
    afterAll(async () => {
      await sbx?.kill().catch(() => {});
    });

    it("runs code with its callbacks, keeping variables between runs", async () => {
      const seen = { stdout: [] as string[], stderr: [] as string[], results: 0, errors: 0 };
      const run = await sbx.runCode("import sys\ny = 20\nprint('out')\nprint('err', file=sys.stderr)\ny + 1", {
        onStdout: (m) => void seen.stdout.push(m.line),
        onStderr: (m) => void seen.stderr.push(m.line),
        onResult: () => void seen.results++,
        onError: () => void seen.errors++,
      });
      expect(run.text).toBe("21");
      expect(seen).toEqual({ stdout: ["out\n"], stderr: ["err\n"], results: 1, errors: 0 });
      expect((await sbx.runCode("y * 2")).text).toBe("40");
    });

    it("a run sees the env given at create (the interpreter started in the snapshot, before it), under the run's own", async () => {
      expect((await sbx.runCode("import os\nos.environ['FROM_CREATE']")).text).toBe("'set at create'");
      expect((await sbx.runCode("os.environ['FROM_CREATE']", { envs: { FROM_CREATE: "this run's" } })).text).toBe(`"this run's"`);
      expect((await sbx.runCode("os.environ.get('FROM_CREATE')")).text).toBe("'set at create'");
    });

    it("returns a plot as results[].png, a DataFrame as data, an error with its traceback", async () => {
      const plot = await sbx.runCode(PLOT);
      const png = plot.results.find((r) => r.png)?.png;
      expect(pngSize(png!).bytes).toBeGreaterThan(5_000);
      const frame = await sbx.runCode(FRAME);
      expect(frame.results[0]?.data).toEqual({ columns: ["n", "sq"], index: [0, 1, 2], data: [[1, 1], [2, 4], [3, 9]] });
      let reported = 0;
      const failed = await sbx.runCode("raise ValueError('boom')", { onError: () => void reported++ });
      expect(failed.error).toMatchObject({ name: "ValueError", value: "boom" });
      expect(failed.error?.traceback).toContain("raise ValueError('boom')");
      expect(reported).toBe(1);
    });

    it("times out a run on the client, which interrupts it: the context works right after", async () => {
      const err = await sbx.runCode("import time; time.sleep(60)", { timeoutMs: 1_500 }).catch((e: unknown) => e);
      expect((err as Error).name).toBe("TimeoutError");
      const started = Date.now();
      expect((await sbx.runCode("y")).text).toBe("20");
      // The 60 s sleep was interrupted, not waited for.
      expect(Date.now() - started).toBeLessThan(15_000);
    }, 40_000);

    it("creates, lists, restarts and removes contexts; a JavaScript context keeps its variables", async () => {
      const ctx = await sbx.createCodeContext({ language: "python" });
      expect((await sbx.runCode("y", { context: ctx })).error?.name).toBe("NameError");
      await sbx.runCode("z = 5", { context: ctx });
      expect((await sbx.listCodeContexts()).map((c) => c.id)).toContain(ctx.id);
      await sbx.restartCodeContext(ctx);
      expect((await sbx.runCode("z", { context: ctx })).error?.name).toBe("NameError");
      await sbx.removeCodeContext(ctx);
      expect((await sbx.listCodeContexts()).map((c) => c.id)).not.toContain(ctx.id);

      const js = await sbx.createCodeContext({ language: "js" });
      await sbx.runCode("let total = 40", { context: js });
      expect((await sbx.runCode("total + 2", { context: js })).text).toBe("42");
    }, 60_000);
  });
});
