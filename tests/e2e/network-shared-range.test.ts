import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

describe("two daemons on one host given the same sandbox range (crun)", () => {
  const range = `10.${215 + (process.pid % 40)}.250.0/24`;
  let a: TestDaemon;
  let b: TestDaemon;

  beforeAll(async () => {
    [a, b] = await Promise.all([startTestDaemon({ STASIS_NETWORK_RANGE: range }), startTestDaemon({ STASIS_NETWORK_RANGE: range })]);
  });
  afterAll(async () => {
    await Promise.all([a?.destroy(), b?.destroy()]);
  });

  it("never hand out an address the other's sandbox holds, and each sandbox is reached at its own", async () => {
    const serve = async (daemon: TestDaemon, name: string) => {
      const s = await Sandbox.create({ runtime: "crun", ...daemon.conn });
      await s.files.write("/srv/index.html", `${name}\n`);
      await s.commands.start("cd /srv && exec python3 -m http.server 8000", { timeoutMs: 0 });
      await s.setPreview({ public: true });
      return s;
    };
    const first = await serve(a, "daemon a");
    const second = await serve(b, "daemon b");
    expect(second.info.network?.address).not.toBe(first.info.network?.address);
    for (const [s, name] of [[first, "daemon a"], [second, "daemon b"]] as const) {
      let body = "";
      for (let i = 0; i < 100 && body !== `${name}\n`; i++) {
        body = await fetch(`${await s.getUrl(8000)}/index.html`).then((r) => r.text(), () => "");
        if (body !== `${name}\n`) await new Promise((r) => setTimeout(r, 100));
      }
      expect(body).toBe(`${name}\n`);
    }
    await Promise.all([first.kill(), second.kill()]);
  });
});
