import { createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ConnectionOpts, Sandbox as E2bSandbox, SandboxOpts } from "e2b-2.51";
import { startTestDaemon, type TestDaemon } from "./harness.js";

/**
 * The unmodified, published `e2b` JS SDK against a real Stasis daemon and real gVisor sandboxes.
 * Two releases are pinned side by side in the root package.json: 2.45.0 creates and resumes through
 * POST /sandboxes and /sandboxes/{id}/connect, 2.51.0 through /v2/sandboxes and /v2/sandboxes/{id}/connect.
 * Every test runs once per release.
 */

/**
 * The surface this suite uses is the same in both releases, but their classes carry private members,
 * so TypeScript will not treat one module as the other: both are typed as 2.51.0.
 */
const load251 = () => import("e2b-2.51");
type E2bSdk = Awaited<ReturnType<typeof load251>>;

const require = createRequire(import.meta.url);
const SDKS: { version: string; load: () => Promise<E2bSdk> }[] = [
  { version: "2.45.0", load: async () => (await import("e2b-2.45")) as unknown as E2bSdk },
  { version: "2.51.0", load: load251 },
];

const TEST_TIMEOUT = 60_000;
/** The runtime the test daemon gives sandboxes (the E2B API has no say): STASIS_DEFAULT_RUNTIME, as the daemon reads it. */
const RUNTIME = process.env.STASIS_DEFAULT_RUNTIME ?? "gvisor";

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected the promise to reject, but it resolved");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes its own pid, then an ever-increasing counter (kept in memory) every 0.2 s. */
const COUNTER_PY = `import os, time
with open("/tmp/counter.pid", "w") as f:
    f.write(str(os.getpid()))
i = 0
while True:
    i += 1
    with open("/tmp/counter.tmp", "w") as f:
        f.write(str(i))
    os.replace("/tmp/counter.tmp", "/tmp/counter")
    time.sleep(0.2)
`;

describe("the e2b SDK against Stasis", () => {
  let daemon: TestDaemon;
  /** Where the SDK is pointed: the daemon serves both the E2B API and envd. */
  const conn: ConnectionOpts = {};
  let logMark = 0;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    const res = await fetch(`${daemon.url}/v1/e2b/keys`, {
      method: "POST",
      headers: { Authorization: `Bearer ${daemon.apiKey}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "test" }),
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`POST /v1/e2b/keys answered ${res.status}: ${text}`);
    const created = JSON.parse(text) as { id: string; name: string; prefix: string; createdAt: string; lastUsedAt: string | null; key: string };
    expect(created).toMatchObject({ id: expect.any(String), name: "test", prefix: expect.any(String), createdAt: expect.any(String) });
    expect(created.key).toMatch(/^e2b_[0-9a-f]{40}$/);
    Object.assign(conn, { apiKey: created.key, apiUrl: daemon.url, sandboxUrl: daemon.url });
  });

  afterAll(async () => {
    await daemon?.destroy();
  });

  beforeEach(() => {
    logMark = daemon.logs.length;
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state !== "fail") return;
    // Warnings and errors the daemon logged during the failed test.
    const lines = daemon.logs.slice(logMark).filter((l) => /"level":(40|50|60)/.test(l));
    if (lines.length > 0) console.log(`daemon warnings/errors during "${ctx.task.name}":\n${lines.slice(-20).join("\n")}`);
  });

  describe.each(SDKS)("e2b $version", ({ version, load }) => {
    let sdk: E2bSdk;
    let sbx: E2bSandbox;
    /** A second sandbox: paused and resumed, then killed. */
    let other: E2bSandbox | undefined;
    const tag = `${version}-${randomBytes(3).toString("hex")}`;
    const made: string[] = [];

    function create(opts: SandboxOpts = {}): Promise<E2bSandbox> {
      return sdk.Sandbox.create("base", { ...conn, timeoutMs: 300_000, ...opts }).then((s) => {
        made.push(s.sandboxId);
        return s;
      });
    }

    beforeAll(async () => {
      sdk = await load();
      sbx = await create({ metadata: { suite: "e2b-compat", tag, role: "main" }, envs: { SBX_VAR: "from-create" } });
    });

    afterAll(async () => {
      if (sdk) await Promise.all(made.map((id) => sdk.Sandbox.kill(id, conn).catch(() => false)));
    });

    it(
      "creates a running sandbox",
      async () => {
        const alias = version === "2.45.0" ? "e2b-2.45" : "e2b-2.51";
        expect((require(`${alias}/package.json`) as { version: string }).version).toBe(version);
        expect(sbx.sandboxId).toEqual(expect.any(String));
        expect(sbx.sandboxId.length).toBeGreaterThan(0);
        expect(await sbx.isRunning()).toBe(true);
      },
      TEST_TIMEOUT,
    );

    it(
      "runs a command and returns its stdout, stderr and exit code",
      async () => {
        const r = await sbx.commands.run("echo out; echo err >&2");
        expect(r).toMatchObject({ exitCode: 0, stdout: "out\n", stderr: "err\n" });
      },
      TEST_TIMEOUT,
    );

    it(
      "rejects a failing command with the SDK's CommandExitError",
      async () => {
        const exit3 = await rejection(sbx.commands.run("echo partial; exit 3"));
        expect(exit3).toBeInstanceOf(sdk.CommandExitError);
        expect(exit3).toMatchObject({ exitCode: 3, stdout: "partial\n" });

        const ls = await rejection(sbx.commands.run("ls /nope"));
        expect(ls).toBeInstanceOf(sdk.CommandExitError);
        const lsErr = ls as InstanceType<E2bSdk["CommandExitError"]>;
        expect(lsErr.exitCode).not.toBe(0);
        expect(lsErr.stderr).toMatch(/No such file or directory/);
      },
      TEST_TIMEOUT,
    );

    it(
      "applies sandbox and per-command envs, cwd and user",
      async () => {
        const envs = await sbx.commands.run('echo "$SBX_VAR $CMD_VAR"', { envs: { CMD_VAR: "from-run" } });
        expect(envs.stdout).toBe("from-create from-run\n");
        // A per-command env is for that command only.
        expect((await sbx.commands.run('echo "[$CMD_VAR]"')).stdout).toBe("[]\n");

        expect((await sbx.commands.run("pwd")).stdout).toBe("/home/user\n");
        expect((await sbx.commands.run("pwd", { cwd: "/tmp" })).stdout).toBe("/tmp\n");

        expect((await sbx.commands.run("whoami")).stdout).toBe("user\n");
        expect((await sbx.commands.run("whoami", { user: "root" })).stdout).toBe("root\n");
      },
      TEST_TIMEOUT,
    );

    it(
      "streams output to onStdout and onStderr",
      async () => {
        const out: string[] = [];
        const err: string[] = [];
        const r = await sbx.commands.run("for i in 1 2 3; do echo line-$i; echo warn-$i >&2; sleep 0.1; done", {
          onStdout: (d) => void out.push(d),
          onStderr: (d) => void err.push(d),
        });
        expect(out.join("")).toBe("line-1\nline-2\nline-3\n");
        expect(err.join("")).toBe("warn-1\nwarn-2\nwarn-3\n");
        expect(r.stdout).toBe(out.join(""));
      },
      TEST_TIMEOUT,
    );

    it(
      "lists a background command, re-attaches to it and kills it",
      async () => {
        const first: string[] = [];
        const ticker = await sbx.commands.run("i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done", {
          background: true,
          timeoutMs: 0,
          onStdout: (d) => void first.push(d),
        });
        expect(ticker.pid).toBeGreaterThan(0);
        await expect.poll(() => first.join(""), { timeout: 10_000 }).toContain("tick-2");
        expect((await sbx.commands.list()).map((p) => p.pid)).toContain(ticker.pid);

        await ticker.disconnect();
        const later: string[] = [];
        const again = await sbx.commands.connect(ticker.pid, { timeoutMs: 0, onStdout: (d) => void later.push(d) });
        expect(again.pid).toBe(ticker.pid);
        // Output written after re-attaching arrives on the new handle.
        await expect.poll(() => (later.join("").match(/tick-\d+/g) ?? []).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
        const seenFirst = Math.max(...(first.join("").match(/\d+/g) ?? ["0"]).map(Number));
        const seenLater = Math.max(...(later.join("").match(/\d+/g) ?? ["0"]).map(Number));
        expect(seenLater).toBeGreaterThan(seenFirst);

        expect(await sbx.commands.kill(ticker.pid)).toBe(true);
        await expect(again.wait()).rejects.toBeInstanceOf(sdk.CommandExitError);
        await expect.poll(async () => (await sbx.commands.list()).map((p) => p.pid), { timeout: 10_000 }).not.toContain(ticker.pid);
      },
      TEST_TIMEOUT,
    );

    it(
      "sends stdin to a background command and kills it through its handle",
      async () => {
        const out: string[] = [];
        const cat = await sbx.commands.run("cat", { background: true, stdin: true, timeoutMs: 0, onStdout: (d) => void out.push(d) });
        expect(cat.pid).toBeGreaterThan(0);
        await cat.sendStdin("hello\n");
        await expect.poll(() => out.join(""), { timeout: 10_000 }).toBe("hello\n");
        await sbx.commands.sendStdin(cat.pid, "world\n");
        await expect.poll(() => out.join(""), { timeout: 10_000 }).toBe("hello\nworld\n");

        expect(await cat.kill()).toBe(true);
        await expect(cat.wait()).rejects.toBeInstanceOf(sdk.CommandExitError);
        await expect.poll(async () => (await sbx.commands.list()).map((p) => p.pid), { timeout: 10_000 }).not.toContain(cat.pid);
      },
      TEST_TIMEOUT,
    );

    it(
      "names the sandbox 'sandbox', in /etc/hostname too (not the host that built the template)",
      async () => {
        expect((await sbx.commands.run("cat /etc/hostname; hostname")).stdout).toBe("sandbox\nsandbox\n");
      },
      TEST_TIMEOUT,
    );

    // gVisor sets no_new_privs on every process, whatever the OCI spec says: setuid sudo works under crun only.
    it.runIf(RUNTIME === "crun")(
      "gives user passwordless sudo, as E2B's base template does",
      async () => {
        expect((await sbx.commands.run("sudo -n whoami")).stdout).toBe("root\n");
        expect((await sbx.commands.run("sudo -n id -u", { user: "user" })).stdout).toBe("0\n");
      },
      TEST_TIMEOUT,
    );

    it(
      "writes and reads text and bytes, relative to /home/user, as the default user",
      async () => {
        const written = await sbx.files.write("/home/user/compat/hello.txt", "héllo\n");
        expect(written).toMatchObject({ name: "hello.txt", path: "/home/user/compat/hello.txt" });
        expect(await sbx.files.read("/home/user/compat/hello.txt")).toBe("héllo\n");

        const bytes = new Uint8Array(256).map((_, i) => i);
        await sbx.files.write("/home/user/compat/bytes.bin", bytes.buffer);
        const back = await sbx.files.read("/home/user/compat/bytes.bin", { format: "bytes" });
        expect(Buffer.from(back).equals(Buffer.from(bytes))).toBe(true);
        expect((await sbx.commands.run("sha256sum /home/user/compat/bytes.bin")).stdout).toContain(
          createHash("sha256").update(bytes).digest("hex"),
        );

        // A relative path resolves against the user's home.
        const rel = await sbx.files.write("compat/relative.txt", "relative");
        expect(rel.path).toBe("/home/user/compat/relative.txt");
        expect((await sbx.commands.run("cat /home/user/compat/relative.txt")).stdout).toBe("relative");
        expect(await sbx.files.read("compat/relative.txt")).toBe("relative");

        const owners = await sbx.commands.run("stat -c %U /home/user/compat/hello.txt /home/user/compat/relative.txt /home/user/compat");
        expect(owners.stdout).toBe("user\nuser\nuser\n");
        // As root, a file is root's.
        await sbx.files.write("/tmp/compat-root.txt", "x", { user: "root" });
        expect((await sbx.commands.run("stat -c %U /tmp/compat-root.txt")).stdout).toBe("root\n");
      },
      TEST_TIMEOUT,
    );

    it(
      "lists, makes, renames, stats and removes files",
      async () => {
        expect(await sbx.files.makeDir("/home/user/fs/sub")).toBe(true);
        expect(await sbx.files.makeDir("/home/user/fs/sub")).toBe(false);
        await sbx.files.write("/home/user/fs/a.txt", "12345");

        const entries = await sbx.files.list("/home/user/fs");
        expect(entries.map((e) => e.name).sort()).toEqual(["a.txt", "sub"]);
        expect(entries.find((e) => e.name === "sub")).toMatchObject({ type: sdk.FileType.DIR, path: "/home/user/fs/sub" });
        expect(entries.find((e) => e.name === "a.txt")).toMatchObject({ type: sdk.FileType.FILE, path: "/home/user/fs/a.txt", size: 5 });

        const info = await sbx.files.getInfo("/home/user/fs/a.txt");
        expect(info).toMatchObject({ name: "a.txt", path: "/home/user/fs/a.txt", type: sdk.FileType.FILE, size: 5, owner: "user" });
        expect((await sbx.files.getInfo("/home/user/fs/sub")).type).toBe(sdk.FileType.DIR);

        const moved = await sbx.files.rename("/home/user/fs/a.txt", "/home/user/fs/sub/b.txt");
        expect(moved).toMatchObject({ name: "b.txt", path: "/home/user/fs/sub/b.txt" });
        expect(await sbx.files.exists("/home/user/fs/a.txt")).toBe(false);
        expect(await sbx.files.exists("/home/user/fs/sub/b.txt")).toBe(true);
        expect(await sbx.files.read("/home/user/fs/sub/b.txt")).toBe("12345");

        await sbx.files.remove("/home/user/fs/sub/b.txt");
        expect(await sbx.files.exists("/home/user/fs/sub/b.txt")).toBe(false);
        await sbx.files.remove("/home/user/fs");
        expect(await sbx.files.exists("/home/user/fs")).toBe(false);
        // Removing what is not there succeeds, as `rm -rf` (envd's os.RemoveAll) does.
        await sbx.files.remove("/home/user/fs");
        await sbx.files.remove("/home/user/never/was.txt");
      },
      TEST_TIMEOUT,
    );

    it(
      "describes a symlink as envd does: its target's type and mode, and the absolute path it leads to",
      async () => {
        await sbx.commands.run(
          "mkdir -p links/dir && echo hi > links/target.txt && chmod 640 links/target.txt && ln -sfn target.txt links/rel && ln -sfn ../links/rel links/chain && ln -sfn dir links/dirlink && ln -sfn nowhere links/dangling",
        );
        const rel = await sbx.files.getInfo("links/rel");
        expect(rel).toMatchObject({ name: "rel", path: "/home/user/links/rel", type: sdk.FileType.FILE, mode: 0o640, symlinkTarget: "/home/user/links/target.txt" });
        // Every link followed, to an absolute path.
        expect((await sbx.files.getInfo("links/chain")).symlinkTarget).toBe("/home/user/links/target.txt");
        expect(await sbx.files.getInfo("links/dirlink")).toMatchObject({ type: sdk.FileType.DIR, symlinkTarget: "/home/user/links/dir" });
        const dangling = await sbx.files.getInfo("links/dangling");
        expect(dangling.symlinkTarget).toBe("/home/user/links/dangling");
        expect(dangling.type).toBeUndefined();
        const listed = await sbx.files.list("links");
        expect(listed.find((e) => e.name === "rel")).toMatchObject({ type: sdk.FileType.FILE, symlinkTarget: "/home/user/links/target.txt" });
        expect(listed.find((e) => e.name === "target.txt")?.symlinkTarget).toBeUndefined();
      },
      TEST_TIMEOUT,
    );

    it(
      "rejects reading a missing file with FileNotFoundError",
      async () => {
        const err = await rejection(sbx.files.read("/home/user/does-not-exist.txt"));
        expect(err).toBeInstanceOf(sdk.FileNotFoundError);
        expect(err).toBeInstanceOf(sdk.NotFoundError);
        await expect(sbx.files.getInfo("/home/user/does-not-exist.txt")).rejects.toBeInstanceOf(sdk.NotFoundError);
      },
      TEST_TIMEOUT,
    );

    it(
      "serves signed upload and download URLs, and refuses a forged or expired signature",
      async () => {
        const up = await sbx.uploadUrl("signed/upload.txt", { useSignatureExpiration: 60 });
        const form = new FormData();
        form.append("file", new Blob([`signed ${version}`]), "upload.txt");
        const uploaded = await fetch(up, { method: "POST", body: form });
        expect(uploaded.status).toBe(200);
        expect(await uploaded.json()).toEqual([expect.objectContaining({ path: "/home/user/signed/upload.txt" })]);
        const down = await sbx.downloadUrl("signed/upload.txt");
        const downloaded = await fetch(down);
        expect(await downloaded.text()).toBe(`signed ${version}`);
        // The signature covers the path: the same signature for another file opens nothing.
        expect((await fetch(down.replace("upload.txt", "other.txt"))).status).toBe(401);
        const expired = new URL(await sbx.downloadUrl("signed/upload.txt", { useSignatureExpiration: 60 }));
        expired.searchParams.set("signature_expiration", String(Math.floor(Date.now() / 1000) - 10));
        expect((await fetch(expired)).status).toBe(401);
        // Signed for an expiry already past: envd's own words.
        const past = new URL(await sbx.downloadUrl("signed/upload.txt", { useSignatureExpiration: -10 }));
        const refused = await fetch(past);
        expect(refused.status).toBe(401);
        expect(await refused.json()).toEqual({ code: 401, message: "signature is already expired" });

        // A form part without a filename is written to ?path= (its bytes exactly).
        const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const boundary = "stasis-boundary";
        const body = Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\n`),
          bytes,
          Buffer.from(`\r\n--${boundary}--\r\n`),
        ]);
        const plain = await fetch(await sbx.uploadUrl("signed/no-filename.bin"), { method: "POST", headers: { "content-type": `multipart/form-data; boundary=${boundary}` }, body });
        expect(plain.status).toBe(200);
        expect(await plain.json()).toEqual([expect.objectContaining({ path: "/home/user/signed/no-filename.bin" })]);
        expect(Buffer.from(await sbx.files.read("signed/no-filename.bin", { format: "bytes" })).equals(bytes)).toBe(true);
      },
      TEST_TIMEOUT,
    );

    it(
      "reports the sandbox's info and moves endAt with setTimeout",
      async () => {
        const info = await sbx.getInfo();
        expect(info).toMatchObject({
          sandboxId: sbx.sandboxId,
          templateId: "base",
          metadata: { suite: "e2b-compat", tag, role: "main" },
          state: "running",
        });
        expect(info.startedAt).toBeInstanceOf(Date);
        expect(info.endAt).toBeInstanceOf(Date);
        expect(info.startedAt.getTime()).toBeLessThanOrEqual(Date.now() + 5_000);
        expect(info.startedAt.getTime()).toBeGreaterThan(Date.now() - 10 * 60_000);
        expect(info.endAt.getTime()).toBeGreaterThan(info.startedAt.getTime());
        expect(info.cpuCount).toBeGreaterThan(0);
        expect(info.memoryMB).toBeGreaterThan(0);

        await sbx.setTimeout(900_000);
        const after = await sbx.getInfo();
        expect(after.endAt.getTime()).toBeGreaterThan(info.endAt.getTime() + 60_000);
        expect(Math.abs(after.endAt.getTime() - (Date.now() + 900_000))).toBeLessThan(30_000);
        // The static form answers the same.
        expect((await sdk.Sandbox.getInfo(sbx.sandboxId, conn)).sandboxId).toBe(sbx.sandboxId);

        const [metrics] = await sbx.getMetrics();
        expect(metrics).toMatchObject({ cpuCount: 1, memTotal: 512 * 1024 * 1024, diskTotal: 4096 * 1024 * 1024 });
        expect(metrics!.memUsed).toBeGreaterThan(1024 * 1024);
        expect(metrics!.diskUsed).toBeGreaterThan(0);
        expect(metrics!.timestamp).toBeInstanceOf(Date);

        // A history, a sample every 5 s: a window holds its own samples and no others.
        await expect.poll(async () => (await sbx.getMetrics()).length, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
        const history = await sbx.getMetrics();
        const second = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);
        const [first, next] = [second(history[0]!.timestamp), second(history[1]!.timestamp)];
        expect(next.getTime()).toBeGreaterThan(first.getTime());
        const one = await sbx.getMetrics({ start: first, end: first });
        expect(one.map((m) => second(m.timestamp).getTime())).toEqual([first.getTime()]);
        const later = await sbx.getMetrics({ start: next });
        expect(later[0]?.timestamp.getTime()).toBe(history[1]!.timestamp.getTime());
        expect(later.every((m) => m.timestamp.getTime() >= next.getTime())).toBe(true);
        expect(await sbx.getMetrics({ end: new Date(info.startedAt.getTime() - 60_000) })).toEqual([]);
      },
      TEST_TIMEOUT,
    );

    it.runIf(version === "2.51.0")(
      "forks a sandbox: the copy has its files and goes its own way",
      async () => {
        await sbx.files.write("fork-me.txt", "before the fork");
        const [copy] = await sdk.Sandbox.fork(sbx.sandboxId, { ...conn, count: 1 });
        if (!(copy instanceof sdk.Sandbox)) throw copy ?? new Error("no fork");
        made.push(copy.sandboxId);
        expect(copy.sandboxId).not.toBe(sbx.sandboxId);
        expect(await copy.files.read("fork-me.txt")).toBe("before the fork");
        await copy.files.write("fork-me.txt", "changed in the copy");
        expect(await sbx.files.read("fork-me.txt")).toBe("before the fork");
        await copy.kill();
      },
      TEST_TIMEOUT,
    );

    it(
      "lists sandboxes through the paginator, filtered by metadata",
      async () => {
        const paginator = sdk.Sandbox.list({ ...conn, query: { metadata: { tag, role: "main" } } });
        const items = await paginator.nextItems();
        expect(items.map((i) => i.sandboxId)).toEqual([sbx.sandboxId]);
        expect(items[0]).toMatchObject({ templateId: "base", state: "running", metadata: { suite: "e2b-compat", tag, role: "main" } });
        expect(paginator.hasNext).toBe(false);
        // A page filled exactly is the last one: no next page that would come back empty.
        const exact = sdk.Sandbox.list({ ...conn, limit: 1, query: { metadata: { tag, role: "main" } } });
        expect((await exact.nextItems()).map((i) => i.sandboxId)).toEqual([sbx.sandboxId]);
        expect(exact.hasNext).toBe(false);

        const none = await sdk.Sandbox.list({ ...conn, query: { metadata: { tag: "no-such-tag" } } }).nextItems();
        expect(none).toEqual([]);

        const all = await sdk.Sandbox.list({ ...conn }).nextItems();
        expect(all.map((i) => i.sandboxId)).toContain(sbx.sandboxId);
      },
      TEST_TIMEOUT,
    );

    it(
      "pauses a sandbox and resumes it with connect, its processes still alive",
      async () => {
        const paused = await create({ metadata: { suite: "e2b-compat", tag, role: "pause" } });
        other = paused;
        await paused.files.write("/tmp/counter.py", COUNTER_PY);
        const counter = await paused.commands.run("python3 /tmp/counter.py", { background: true, timeoutMs: 0 });
        const read = async (s: E2bSandbox) => Number((await s.files.read("/tmp/counter")).trim());
        await expect.poll(() => read(paused).catch(() => 0), { timeout: 15_000 }).toBeGreaterThanOrEqual(5);
        const pid = Number((await paused.files.read("/tmp/counter.pid")).trim());
        expect(pid).toBeGreaterThan(0);
        await counter.disconnect();
        const before = await read(paused);

        const pause = typeof paused.pause === "function" ? paused.pause.bind(paused) : paused.betaPause.bind(paused);
        expect(await pause()).toBe(true);
        expect((await paused.getInfo()).state).toBe("paused");
        const listed = await sdk.Sandbox.list({ ...conn, query: { metadata: { tag, role: "pause" } } }).nextItems();
        expect(listed.map((i) => [i.sandboxId, i.state])).toEqual([[paused.sandboxId, "paused"]]);
        expect(await paused.isRunning()).toBe(false);
        // 3 s paused would be 15 ticks for a running counter.
        await sleep(3_000);

        const resumed = await sdk.Sandbox.connect(paused.sandboxId, conn);
        expect(resumed.sandboxId).toBe(paused.sandboxId);
        expect(await resumed.isRunning()).toBe(true);
        expect((await resumed.getInfo()).state).toBe("running");

        const after = await read(resumed);
        // The counter lives in the process's memory: it carries on from where it was, and stood still while paused.
        expect(after).toBeGreaterThanOrEqual(before);
        expect(after - before).toBeLessThan(10);
        expect((await resumed.commands.run(`test -d /proc/${pid} && cat /proc/${pid}/cmdline | tr '\\0' ' '`)).stdout).toContain("counter.py");
        expect((await resumed.commands.list()).map((p) => p.pid)).toContain(counter.pid);
        await expect.poll(() => read(resumed), { timeout: 10_000 }).toBeGreaterThan(after + 2);
        other = resumed;
      },
      TEST_TIMEOUT,
    );

    it(
      "ends a command whose sandbox is killed as E2B does: the SDK reports the sandbox killed",
      async () => {
        const doomed = await create({ metadata: { suite: "e2b-compat", tag, role: "doomed" } });
        const running = doomed.commands.run("echo started; sleep 600", { timeoutMs: 0 });
        const outcome = rejection(running);
        await expect.poll(async () => (await doomed.commands.list()).some((p) => p.args.join(" ").includes("sleep 600")), { timeout: 15_000 }).toBe(true);
        expect(await sdk.Sandbox.kill(doomed.sandboxId, conn)).toBe(true);
        const err = await outcome;
        expect(err).toBeInstanceOf(sdk.TimeoutError);
        expect(err.message).toMatch(/The sandbox was killed or reached its end of life while the request was in flight/);
      },
      TEST_TIMEOUT,
    );

    it(
      "kills a sandbox, after which it is gone",
      async () => {
        const victim = other ?? (await create({ metadata: { suite: "e2b-compat", tag, role: "victim" } }));
        expect(await victim.kill()).toBe(true);
        expect(await victim.isRunning()).toBe(false);
        await expect(sdk.Sandbox.getInfo(victim.sandboxId, conn)).rejects.toBeInstanceOf(sdk.NotFoundError);
        const listed = await sdk.Sandbox.list({ ...conn, query: { metadata: { tag } } }).nextItems();
        expect(listed.map((i) => i.sandboxId)).not.toContain(victim.sandboxId);
        expect(await sdk.Sandbox.kill(victim.sandboxId, conn)).toBe(false);
        expect(await sdk.Sandbox.kill("sbx_0000000000000000", conn)).toBe(false);
      },
      TEST_TIMEOUT,
    );
  });
});
