import { createHash, randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Sandbox, SandboxNotFoundError, FileNotFoundError, ProcessNotFoundError, StasisError } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

// One conformance suite, run against every real runtime driver.
describe.each(["gvisor", "crun"] as const)("sandbox on %s", (runtime) => {
  let daemon: TestDaemon;
  let sandbox: Sandbox;
  const extra: Sandbox[] = [];

  beforeAll(async () => {
    daemon = await startTestDaemon();
    sandbox = await Sandbox.create({ runtime, env: { GREETING: "hello" }, metadata: { suite: "conformance", runtime }, ...daemon.conn });
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail") console.error(`sandbox under test: ${sandbox?.id} (${runtime})`);
  });
  afterAll(async () => {
    await Promise.all(extra.map((s) => s.kill().catch(() => {})));
    await sandbox?.kill().catch(() => {});
    await daemon?.destroy();
  });

  it("reports itself running with the requested settings", async () => {
    const info = await sandbox.refresh();
    expect(info).toMatchObject({ runtime, state: "running", template: "base", env: { GREETING: "hello" }, metadata: { suite: "conformance" } });
    expect(info.id).toMatch(/^sbx_/);
  });

  it("runs Python and returns output and exit codes", async () => {
    const r = await sandbox.commands.run(`python3 -c "import sys; print(6*7); print('oops', file=sys.stderr); sys.exit(3)"`);
    expect(r).toMatchObject({ exitCode: 3, stdout: "42\n", stderr: "oops\n", signal: null, timedOut: false });
  });

  it("passes env, cwd, user and argv exactly", async () => {
    const r = await sandbox.commands.run(["sh", "-c", 'echo "$GREETING $EXTRA $(pwd) $(id -un)"; printf "%s|" "$@"', "arg0", "a b", "c"], {
      env: { EXTRA: "there" },
      cwd: "/tmp",
      user: "user",
    });
    expect(r.stdout).toBe("hello there /tmp user\na b|c|");
  });

  it("streams output events in order and ends with exit", async () => {
    const events = [];
    for await (const e of sandbox.commands.stream("for i in 1 2 3; do echo $i; sleep 0.05; done; echo done >&2")) events.push(e);
    expect(events[0]?.type).toBe("start");
    const stdout = events.filter((e) => e.type === "stdout").map((e) => (e as { data: string }).data).join("");
    expect(stdout).toBe("1\n2\n3\n");
    expect(events.at(-1)).toMatchObject({ type: "exit", exitCode: 0 });
  });

  it("kills a foreground command that exceeds its timeout", async () => {
    const r = await sandbox.commands.run("sleep 30", { timeoutMs: 500 });
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe("SIGKILL");
  });

  it("reports a missing binary as exec_failed", async () => {
    await expect(sandbox.commands.run(["/no/such/binary"])).rejects.toMatchObject({ code: "exec_failed" });
  });

  it("runs background processes: list, stdin, re-attach with replay, kill", async () => {
    const handle = await sandbox.commands.start("while read line; do echo \"got $line\"; done; echo bye", { stdin: true, tag: "echoer" });
    await handle.sendStdin("one\n");
    await handle.sendStdin("two\n");
    const listed = await sandbox.commands.list();
    expect(listed.find((p) => p.pid === handle.pid)).toMatchObject({ running: true, tag: "echoer" });
    await handle.sendStdin("", { eof: true });
    const result = await handle.wait();
    expect(result.stdout).toBe("got one\ngot two\nbye\n");
    expect(result.exitCode).toBe(0);

    const sleeper = await sandbox.commands.start("echo started; sleep 300");
    await new Promise((r) => setTimeout(r, 300));
    const again = await sandbox.commands.connect(sleeper.pid);
    const seen: string[] = [];
    for await (const e of again.stream({ replay: true })) {
      if (e.type === "stdout") {
        seen.push(e.data);
        break;
      }
    }
    expect(seen.join("")).toContain("started");
    await sandbox.commands.kill(sleeper.pid);
    const killed = await sleeper.wait();
    expect(killed.signal).toBe("SIGKILL");
    await expect(sandbox.commands.kill(999_999)).rejects.toBeInstanceOf(ProcessNotFoundError);
  });

  it("writes, reads, lists, stats, moves and removes files", async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const info = await sandbox.files.write("/home/user/data/blob.bin", bytes);
    expect(info).toMatchObject({ type: "file", size: bytes.length, path: "/home/user/data/blob.bin" });
    expect(Buffer.from(await sandbox.files.read("/home/user/data/blob.bin")).equals(bytes)).toBe(true);

    await sandbox.files.write("/home/user/data/note.txt", "héllo\n");
    expect(await sandbox.files.readText("/home/user/data/note.txt")).toBe("héllo\n");
    const viaShell = await sandbox.commands.run("cat /home/user/data/note.txt && sha256sum /home/user/data/blob.bin");
    expect(viaShell.stdout).toContain("héllo");
    expect(viaShell.stdout).toContain(createHash("sha256").update(bytes).digest("hex"));

    await sandbox.files.mkdir("/home/user/data/sub/deeper");
    const listing = await sandbox.files.list("/home/user/data", { depth: 2 });
    expect(listing.entries.map((e) => e.path).sort()).toEqual(
      ["/home/user/data/blob.bin", "/home/user/data/note.txt", "/home/user/data/sub", "/home/user/data/sub/deeper"].sort(),
    );
    const moved = await sandbox.files.move("/home/user/data/note.txt", "/home/user/data/sub/note.txt");
    expect(moved.path).toBe("/home/user/data/sub/note.txt");
    expect(await sandbox.files.exists("/home/user/data/note.txt")).toBe(false);
    await expect(sandbox.files.remove("/home/user/data/sub")).rejects.toMatchObject({ code: "directory_not_empty" });
    await sandbox.files.remove("/home/user/data", { recursive: true });
    await expect(sandbox.files.stat("/home/user/data")).rejects.toBeInstanceOf(FileNotFoundError);
  });

  it("lists with metadata filters and pagination, and extends the timeout", async () => {
    const second = await Sandbox.create({ runtime, metadata: { suite: "conformance", role: "second" }, ...daemon.conn });
    extra.push(second);
    const filtered = await Sandbox.list({ metadata: "role=second" }, daemon.conn);
    expect(filtered.sandboxes.map((s) => s.id)).toEqual([second.id]);
    const page1 = await Sandbox.list({ limit: 1 }, daemon.conn);
    expect(page1.sandboxes).toHaveLength(1);
    expect(page1.nextCursor).not.toBeNull();
    const page2 = await Sandbox.list({ limit: 1, cursor: page1.nextCursor! }, daemon.conn);
    expect(page2.sandboxes[0]?.id).not.toBe(page1.sandboxes[0]?.id);

    const before = Date.parse(second.info.expiresAt!);
    const updated = await second.setTimeout(3_600_000);
    expect(Date.parse(updated.expiresAt!)).toBeGreaterThan(before);

    await second.kill();
    await expect(Sandbox.connect(second.id, daemon.conn)).rejects.toBeInstanceOf(SandboxNotFoundError);
  });

  it("puts a sandbox into standby when its lifetime runs out, and wakes it with a fresh lifetime", async () => {
    const short = await Sandbox.create({ runtime, timeoutMs: 1500, ...daemon.conn });
    extra.push(short);
    await expect.poll(async () => (await short.refresh()).state, { timeout: 10_000, interval: 200 }).toBe("paused");
    expect(short.info.stateReason).toMatch(/lifetime/);
    expect(short.info.expiresAt).toBeNull();
    expect((await short.commands.run("echo awake")).stdout).toBe("awake\n");
    const woken = await short.refresh();
    expect(woken.state).toBe("running");
    expect(Date.parse(woken.expiresAt!)).toBeGreaterThan(Date.now() + 500);
  });

  it("stops a sandbox when its lifetime runs out with onTimeout kill", async () => {
    const short = await Sandbox.create({ runtime, timeoutMs: 1500, onTimeout: "kill", ...daemon.conn });
    extra.push(short);
    await new Promise((r) => setTimeout(r, 4000));
    const info = await short.refresh();
    expect(info.state).toBe("stopped");
    expect(info.stateReason).toMatch(/lifetime/);
    await expect(short.commands.run("true")).rejects.toMatchObject({ code: "sandbox_not_running" });
  });

  it("answers bad requests with stable error codes", async () => {
    await expect(sandbox.files.read("relative/path")).rejects.toMatchObject({ code: "invalid_request", status: 400 });
    await expect(Sandbox.create({ runtime, memoryMiB: 1, ...daemon.conn })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(Sandbox.create({ runtime, template: "nope", ...daemon.conn })).rejects.toMatchObject({ code: "template_not_found" });
    await expect(Sandbox.connect("sbx_0000000000000000", daemon.conn)).rejects.toBeInstanceOf(SandboxNotFoundError);
    const err = await Sandbox.list({}, { ...daemon.conn, apiKey: "wrong" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StasisError);
    expect(err).toMatchObject({ code: "unauthorized", status: 401 });
  });
});

