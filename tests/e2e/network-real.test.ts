import { lookup } from "node:dns/promises";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

/** Whether this host reaches the real npm registry (CI machines and laptops do; sealed test machines do not). */
async function reachesRegistry(): Promise<string | null> {
  try {
    const { address } = await lookup("registry.npmjs.org", { family: 4 });
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host: address, port: 443, timeout: 3_000 }, () => {
        socket.destroy();
        resolve();
      });
      socket.once("timeout", () => reject(new Error("timed out")));
      socket.once("error", reject);
    });
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const offline = await reachesRegistry();
if (offline) console.warn(`skipping the real-internet smoke test: this host cannot reach registry.npmjs.org (${offline})`);

/** The one test that uses the real internet: the obvious first command of an agent, from the real registry. */
describe.skipIf(offline !== null)("a sandbox on the real internet", () => {
  let daemon: TestDaemon;
  let sandbox: Sandbox;

  beforeAll(async () => {
    // Sandboxes trust what this host trusts: behind a TLS-inspecting proxy (some CI networks), its CA too.
    daemon = await startTestDaemon({ STASIS_SANDBOX_EXTRA_CA: "/etc/ssl/certs/ca-certificates.crt" });
    sandbox = await Sandbox.create({ ...daemon.conn });
  });
  afterAll(async () => {
    await sandbox?.kill().catch(() => {});
    await daemon?.destroy();
  });

  it("npm installs a small package from the real registry", async () => {
    const r = await sandbox.commands.run("mkdir -p /tmp/app && cd /tmp/app && npm init -y >/dev/null && npm install --no-audit --no-fund is-number@7.0.0 && node -e \"console.log(require('is-number')(5))\"", { timeoutMs: 180_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n").at(-1)).toBe("true");
  }, 200_000);
});
