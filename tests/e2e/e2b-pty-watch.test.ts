import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectionOpts, Sandbox as E2bSandbox } from "e2b-2.51";
import { issueE2bKey, startTestDaemon, type TestDaemon } from "./harness.js";

/** The unmodified e2b SDK's terminals (sandbox.pty) and files.watchDir, and envd's polling watchers, against Stasis. */

const load251 = () => import("e2b-2.51");
type E2bSdk = Awaited<ReturnType<typeof load251>>;
const SDKS: { version: string; load: () => Promise<E2bSdk> }[] = [
  { version: "2.45.0", load: async () => (await import("e2b-2.45")) as unknown as E2bSdk },
  { version: "2.51.0", load: load251 },
];
const TEST_TIMEOUT = 60_000;

async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("the e2b SDK's terminals and watches against Stasis", () => {
  let daemon: TestDaemon;
  const conn: ConnectionOpts = {};

  beforeAll(async () => {
    daemon = await startTestDaemon();
    Object.assign(conn, { apiKey: await issueE2bKey(daemon, "test"), apiUrl: daemon.url, sandboxUrl: daemon.url });
  });

  afterAll(async () => {
    await daemon?.destroy();
  });

  describe.each(SDKS)("e2b $version", ({ load }) => {
    let sdk: E2bSdk;
    let sbx: E2bSandbox;

    beforeAll(async () => {
      sdk = await load();
      sbx = await sdk.Sandbox.create("base", { ...conn, timeoutMs: 300_000 });
    }, TEST_TIMEOUT);

    afterAll(async () => {
      await sbx?.kill().catch(() => {});
    });

    it(
      "pty: create, type, resize, reconnect, exit on Ctrl-D with the shell's code",
      async () => {
        let out = "";
        const decoder = new TextDecoder();
        const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => void (out += decoder.decode(d, { stream: true })), timeoutMs: 0 });
        await sbx.pty.sendInput(term.pid, new TextEncoder().encode("echo $((6*7)) $TERM; stty size\n"));
        await until("42 and the size", () => /42 xterm-256color/.test(out) && /24 80/.test(out));
        await sbx.pty.resize(term.pid, { cols: 120, rows: 40 });
        await sbx.pty.sendInput(term.pid, new TextEncoder().encode("stty size\n"));
        await until("the new size", () => /40 120/.test(out));

        // Leave and come back: the shell is still there.
        await term.disconnect();
        let again = "";
        const term2 = await sbx.pty.connect(term.pid, { onData: (d) => void (again += decoder.decode(d, { stream: true })), timeoutMs: 0 });
        await sbx.pty.sendInput(term.pid, new TextEncoder().encode("echo back-$((1+1))\n"));
        await until("output after the reconnect", () => /back-2/.test(again));

        await sbx.pty.sendInput(term.pid, new TextEncoder().encode("(exit 7)\n"));
        await new Promise((r) => setTimeout(r, 300));
        await sbx.pty.sendInput(term.pid, new Uint8Array([4]));
        const result = await term2.wait().catch((err: { exitCode?: number }) => err);
        expect(result.exitCode).toBe(7);
        expect(await sbx.pty.kill(term.pid)).toBe(false);
      },
      TEST_TIMEOUT,
    );

    it(
      "files.watchDir: create, write, rename and remove, recursive and not",
      async () => {
        await sbx.files.makeDir("/tmp/wd/sub");
        const flat: { name: string; type: string }[] = [];
        const deep: { name: string; type: string }[] = [];
        const h1 = await sbx.files.watchDir("/tmp/wd", (e) => void flat.push({ name: e.name, type: e.type }));
        const h2 = await sbx.files.watchDir("/tmp/wd", (e) => void deep.push({ name: e.name, type: e.type }), { recursive: true });
        await sbx.commands.run("cd /tmp/wd && echo a > a && echo more >> a && mv a b && rm b && echo c > sub/c");
        const seen = (list: typeof flat, type: string, name: string) => list.some((e) => e.type === type && e.name === name);
        await until("the flat watch's events", () => seen(flat, "create", "a") && seen(flat, "write", "a") && seen(flat, "rename", "a") && seen(flat, "remove", "b"));
        await until("the recursive watch's event below", () => seen(deep, "create", "sub/c"));
        expect(flat.some((e) => e.name.includes("/"))).toBe(false);
        await h1.stop();
        await h2.stop();
      },
      TEST_TIMEOUT,
    );
  });

  it(
    "envd's polling watchers: CreateWatcher, GetWatcherEvents, RemoveWatcher",
    async () => {
      const sdk = await load251();
      const sbx = await sdk.Sandbox.create("base", { ...conn, timeoutMs: 300_000 });
      try {
        const headers = {
          "content-type": "application/json",
          "connect-protocol-version": "1",
          "e2b-sandbox-id": sbx.sandboxId,
          "e2b-sandbox-port": "49983",
          "x-access-token": (sbx as unknown as { envdAccessToken: string }).envdAccessToken,
          authorization: `Basic ${Buffer.from("root:").toString("base64")}`,
        };
        const rpc = async (method: string, body: object) => {
          const res = await fetch(`${daemon.url}/filesystem.Filesystem/${method}`, { method: "POST", headers, body: JSON.stringify(body) });
          return { status: res.status, body: (await res.json()) as Record<string, unknown> };
        };
        await sbx.files.makeDir("/tmp/pw");
        const created = await rpc("CreateWatcher", { path: "/tmp/pw", recursive: false });
        expect(created.status).toBe(200);
        const watcherId = created.body.watcherId as string;
        await sbx.files.write("/tmp/pw/x", "1");
        const events: { name: string; type: string }[] = [];
        for (let i = 0; i < 50 && !events.some((e) => e.name === "x"); i++) {
          events.push(...((await rpc("GetWatcherEvents", { watcherId })).body.events as typeof events));
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(events).toContainEqual({ name: "x", type: "EVENT_TYPE_CREATE" });
        expect((await rpc("RemoveWatcher", { watcherId })).status).toBe(200);
        expect(await rpc("GetWatcherEvents", { watcherId })).toMatchObject({ status: 404, body: { code: "not_found" } });
        expect(await rpc("CreateWatcher", { path: "/tmp/nope" })).toMatchObject({ status: 404 });
      } finally {
        await sbx.kill();
      }
    },
    TEST_TIMEOUT,
  );
});
