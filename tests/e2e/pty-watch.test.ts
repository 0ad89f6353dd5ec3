import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox, SandboxNotRunningError, type PtyHandle, type WatchChange } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

/** Terminals and file watches through the Stasis SDK, on both runtimes (the e2b SDK's side: e2b-pty-watch.test.ts). */

const TEST_TIMEOUT = 90_000;

/** A terminal's output as text, with a wait for what should appear next. */
class Screen {
  text = "";
  private waiters: (() => void)[] = [];
  readonly onData = (d: Uint8Array) => {
    this.text += Buffer.from(d).toString("utf8");
    for (const w of this.waiters.splice(0)) w();
  };

  async waitFor(pattern: RegExp, from = 0, timeoutMs = 15_000): Promise<RegExpExecArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.text.slice(from));
      if (m) return m;
      if (Date.now() > end) throw new Error(`no ${pattern} in terminal output: ${JSON.stringify(this.text.slice(from).slice(-500))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
}

async function type(term: PtyHandle, screen: Screen, line: string, expect: RegExp): Promise<string> {
  const from = screen.text.length;
  term.sendInput(`${line}\r`);
  return (await screen.waitFor(expect, from))[0];
}

async function collect(watch: AsyncIterable<WatchChange>, until: (seen: WatchChange[]) => boolean, timeoutMs = 15_000): Promise<WatchChange[]> {
  const seen: WatchChange[] = [];
  const timer = setTimeout(() => {}, timeoutMs);
  const deadline = Date.now() + timeoutMs;
  try {
    for await (const e of watch) {
      seen.push(e);
      if (until(seen) || Date.now() > deadline) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return seen;
}

const has = (seen: WatchChange[], type: string, name: string) => seen.some((e) => e.type === type && "name" in e && e.name === name);

describe.each(["gvisor", "crun"] as const)("terminals and watches on %s", (runtime) => {
  let daemon: TestDaemon;
  let sandbox: Sandbox;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    sandbox = await Sandbox.create({ runtime, ...daemon.conn });
  }, TEST_TIMEOUT);

  afterAll(async () => {
    await daemon?.destroy();
  });

  it(
    "runs an interactive shell: echo, resize, reattach with replay, pause, exit code on Ctrl-D",
    async () => {
      const screen = new Screen();
      const term = await sandbox.pty.create({ cols: 100, rows: 30, onData: screen.onData, env: { PS1: "$ " } });
      expect(await type(term, screen, "echo $((6*7))", /^42\r?$/m)).toMatch(/42/);
      await type(term, screen, "echo $TERM; stty size", /30 100/);
      expect(screen.text).toContain("xterm-256color");
      term.resize({ cols: 132, rows: 43 });
      await type(term, screen, "stty size", /43 132/);

      // Gone and back: the shell lives on, and its recent output is replayed.
      term.disconnect();
      await sandbox.pty.sendInput(term.pid, "echo while-away\r");
      const again = new Screen();
      const term2 = await sandbox.pty.connect(term.pid, { onData: again.onData });
      await again.waitFor(/43 132[\s\S]*while-away/);

      // Frozen with the sandbox and back.
      await sandbox.pause();
      await sandbox.resume();
      expect(await type(term2, again, "echo after-pause", /^after-pause\r?$/m)).toBeTruthy();

      // Ctrl-D ends the shell; its exit status (the last command's) is the terminal's.
      term2.sendInput("(exit 3)\r");
      await new Promise((r) => setTimeout(r, 300));
      term2.sendInput("\x04");
      expect(await term2.wait()).toEqual({ exitCode: 3, signal: null });
    },
    TEST_TIMEOUT,
  );

  it.runIf(runtime === "gvisor")(
    "keeps a terminal through a hibernation: the connection ends, a reconnect wakes the sandbox and finds it",
    async () => {
      const screen = new Screen();
      const term = await sandbox.pty.create({ onData: screen.onData, cmd: ["/bin/sh", "-i"], env: { PS1: "$ " } });
      // Typed before the first prompt, the line would be echoed ahead of it (and "set" follow a "$ ").
      await screen.waitFor(/\$ $/);
      await type(term, screen, "x=kept-in-memory; echo set", /^set\r?$/m);
      const ended = term.wait().catch((err: unknown) => err);
      const watch = await sandbox.files.watch("/tmp");
      const watchEnded = collect(watch, () => false).catch((err: unknown) => err);
      await sandbox.hibernate();
      expect(await ended).toBeInstanceOf(SandboxNotRunningError);
      expect(await watchEnded).toMatchObject({ code: "sandbox_not_running" });
      const back = new Screen();
      const term2 = await sandbox.pty.connect(term.pid, { onData: back.onData });
      expect(await type(term2, back, "echo $x", /^kept-in-memory\r?$/m)).toBeTruthy();
      await term2.kill();
      expect((await term2.wait()).signal).toBe("SIGKILL");
      // Watching works after the wake (the restored agent's orphaned watch was cleared).
      const after = await sandbox.files.watch("/tmp");
      await sandbox.files.write("/tmp/after-wake", "x");
      expect(has(await collect(after, (s) => has(s, "create", "after-wake")), "create", "after-wake")).toBe(true);
      after.stop();
    },
    TEST_TIMEOUT,
  );

  it(
    "watches a directory: create, write, rename and remove; recursive and not",
    async () => {
      await sandbox.files.mkdir("/tmp/w/sub");
      const flat = await sandbox.files.watch("/tmp/w");
      const deep = await sandbox.files.watch("/tmp/w", { recursive: true });
      await sandbox.commands.run("cd /tmp/w && echo a > a && echo more >> a && mv a b && rm b && echo c > sub/c && mkdir new && sleep 0.3 && echo d > new/d");
      const seen = await collect(flat, (s) => has(s, "remove", "b"));
      expect(has(seen, "create", "a") && has(seen, "write", "a") && has(seen, "rename", "a") && has(seen, "create", "b")).toBe(true);
      const deepSeen = await collect(deep, (s) => has(s, "create", "new/d"));
      expect(has(deepSeen, "create", "sub/c") && has(deepSeen, "remove", "b")).toBe(true);
      expect(deepSeen.find((e) => "name" in e && e.name === "sub/c")).toMatchObject({ path: "/tmp/w/sub/c" });
      flat.stop();
      // The non-recursive watch never reported below its directory.
      expect(seen.some((e) => "name" in e && e.name.includes("/"))).toBe(false);
      deep.stop();
      await expect(sandbox.files.watch("/tmp/missing")).rejects.toMatchObject({ code: "file_not_found" });
    },
    TEST_TIMEOUT,
  );
});
