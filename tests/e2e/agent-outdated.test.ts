import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentOutdatedError, Sandbox } from "@stasis/sdk";
import { REPO, startTestDaemon, type TestDaemon } from "./harness.js";

/**
 * A sandbox hibernated by an older daemon wakes with its older agent (agent 0.3.0, protocol 2, from
 * before terminals and watches): terminals and watches are refused with agent_outdated, the rest works.
 */

/** The last commit whose agent speaks protocol 2. */
const PROTOCOL_2_COMMIT = "acf9609";
const TEST_TIMEOUT = 120_000;

describe("terminals and watches on a sandbox of an older agent", () => {
  let daemon: TestDaemon;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "stasis-old-agent-"));
    execFileSync("bash", ["-c", `git -C ${REPO} archive ${PROTOCOL_2_COMMIT} packages/agent | tar -x -C ${dir} && bash ${dir}/packages/agent/build.sh`], { stdio: "ignore" });
  }, TEST_TIMEOUT);

  afterAll(async () => {
    await daemon?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    "refuses with agent_outdated, cleanly, after the sandbox wakes under a newer daemon",
    async () => {
      daemon = await startTestDaemon({ STASIS_AGENT_PATH: join(dir, "packages/agent/dist/stasis-agent") });
      const old = await Sandbox.create({ runtime: "gvisor", ...daemon.conn });
      await old.hibernate();
      await daemon.stop();
      await daemon.restart({ STASIS_AGENT_PATH: join(REPO, "packages/agent/dist/stasis-agent") });
      const again = await Sandbox.connect(old.id, daemon.conn);
      expect((await again.commands.run("echo still-here")).stdout).toBe("still-here\n");
      await expect(again.pty.create()).rejects.toBeInstanceOf(AgentOutdatedError);
      await expect(again.files.watch("/tmp")).rejects.toMatchObject({ code: "agent_outdated", status: 409 });
      await expect(again.pty.connect(1)).rejects.toMatchObject({ code: "agent_outdated" });
      // A new sandbox gets the new agent and its terminals.
      const fresh = await Sandbox.create({ runtime: "gvisor", ...daemon.conn });
      const term = await fresh.pty.create({ cmd: "true" });
      expect((await term.wait()).exitCode).toBe(0);
    },
    TEST_TIMEOUT,
  );
});
