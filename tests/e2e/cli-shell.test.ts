import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { CLI, startTestDaemon, type TestDaemon } from "./harness.js";

/** `stasis shell` driven in a real terminal (tmux): keystrokes, resize, reattach, standby, Ctrl-D's exit code. */

const TEST_TIMEOUT = 120_000;

/** A tmux server of this test's own (other tests and people may run tmux on this host). */
const SOCKET = `stasis-test-${process.pid}`;
function tmux(...args: string[]): string {
  return execFileSync("tmux", ["-L", SOCKET, ...args], { encoding: "utf8" });
}

describe("stasis shell in tmux", () => {
  let daemon: TestDaemon;
  let sandbox: Sandbox;
  let session = `stasis-shell-${process.pid}`;

  const pane = () => tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", session);
  async function waitForPane(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!pattern.test(pane())) {
      if (Date.now() > end) throw new Error(`no ${pattern} on the screen:\n${pane()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const type = (text: string) => tmux("send-keys", "-t", session, "-l", text);
  const enter = () => tmux("send-keys", "-t", session, "Enter");
  function open(args: string): void {
    const env = `STASIS_API_URL=${daemon.url} STASIS_API_KEY=${daemon.apiKey}`;
    // The exit code stays on the screen after the CLI ends.
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", `env ${env} ${process.execPath} ${CLI} shell ${args}; echo "CLI-EXIT=$?"; sleep 60`);
  }

  beforeAll(async () => {
    daemon = await startTestDaemon();
    sandbox = await Sandbox.create({ runtime: "gvisor", ...daemon.conn });
    // Keeps the server up while the client's session is killed and another opened (no race with its exit).
    tmux("new-session", "-d", "-s", "keeper", "sleep 600");
  }, TEST_TIMEOUT);

  afterAll(async () => {
    try {
      tmux("kill-server");
    } catch {
      // already gone
    }
    await daemon?.destroy();
  });

  it(
    "types, resizes, survives a lost client, a pause and a hibernation, and ends on Ctrl-D with the shell's code",
    async () => {
      open(sandbox.id);
      await waitForPane(/terminal (\d+) in/);
      const pid = Number(/terminal (\d+) in/.exec(pane())![1]);
      type("echo $((6*7))");
      enter();
      await waitForPane(/^42\s*$/m);
      type("stty size");
      enter();
      await waitForPane(/^30 100\s*$/m);
      tmux("resize-window", "-t", session, "-x", "120", "-y", "40");
      // The new size reaches the sandbox after tmux's SIGWINCH reaches the CLI: ask until it shows.
      for (let i = 0; i < 50 && !/^40 120\s*$/m.test(pane()); i++) {
        type("stty size");
        enter();
        await new Promise((r) => setTimeout(r, 300));
      }
      await waitForPane(/^40 120\s*$/m);

      // The client goes away; a new one re-attaches and sees the earlier output again.
      tmux("kill-session", "-t", session);
      session = `${session}-b`;
      open(`${sandbox.id} --pid ${pid}`);
      await waitForPane(/^40 120\s*$/m);
      type("echo again-$((1+1))");
      enter();
      await waitForPane(/^again-2\s*$/m);

      await sandbox.pause();
      await sandbox.resume();
      type("echo after-pause");
      enter();
      await waitForPane(/^after-pause\s*$/m);

      await sandbox.hibernate();
      await waitForPane(/press a key to wake it/);
      type("echo woke-up");
      enter();
      await waitForPane(/^woke-up\s*$/m, 60_000);

      type("(exit 5)");
      enter();
      await new Promise((r) => setTimeout(r, 300));
      tmux("send-keys", "-t", session, "C-d");
      await waitForPane(/CLI-EXIT=5/);
      expect(pane()).toContain("CLI-EXIT=5");
    },
    TEST_TIMEOUT,
  );
});
