import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Sandbox } from "@stasis/sdk";
import { startTestDaemon, type TestDaemon } from "./harness.js";

// Bad input against real runtimes: what the sandbox's kernel answers (ENOSPC, ENAMETOOLONG, EBUSY, EXDEV,
// ELOOP, a FIFO, a device) arrives as a stable, non-retryable 4xx (or 507), never a retryable 500, and
// before any byte of a body; replies whose size the sandbox controls stay within the agent's line limit.
describe.each(["gvisor", "crun"] as const)("bad input on %s", (runtime) => {
  let daemon: TestDaemon;
  let sandbox: Sandbox;
  let api: (method: string, path: string, init?: { query?: Record<string, string>; body?: string | Uint8Array; type?: string }) => Promise<{ status: number; body: string }>;

  beforeAll(async () => {
    daemon = await startTestDaemon();
    sandbox = await Sandbox.create({ runtime, diskMiB: 256, ...daemon.conn });
    api = async (method, path, init = {}) => {
      const q = init.query ? `?${new URLSearchParams(init.query).toString()}` : "";
      const res = await fetch(`${daemon.conn.apiUrl}/v1/sandboxes/${sandbox.id}${path}${q}`, {
        method,
        headers: { authorization: `Bearer ${daemon.conn.apiKey}`, ...(init.type ? { "content-type": init.type } : {}) },
        ...(init.body !== undefined ? { body: init.body } : {}),
      });
      return { status: res.status, body: await res.text() };
    };
  });
  afterAll(async () => {
    await sandbox?.kill().catch(() => {});
    await daemon?.destroy();
  });

  const sh = async (script: string) => {
    const r = await sandbox.commands.run(["sh", "-c", script], { timeoutMs: 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    return r.stdout;
  };
  const expectError = (r: { status: number; body: string }, status: number, code: string) => {
    expect(r.status, r.body).toBe(status);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code, retryable: false } });
  };

  it("a path component over 255 bytes is 400 name_too_long", async () => {
    const long = `/tmp/${"n".repeat(300)}`;
    expectError(await api("PUT", "/files", { query: { path: long }, body: "x" }), 400, "name_too_long");
    expectError(await api("GET", "/files/stat", { query: { path: long } }), 400, "name_too_long");
  });

  it("replacing or removing the agent binary is 409 file_busy", async () => {
    expectError(await api("PUT", "/files", { query: { path: "/.stasis/agent" }, body: "x" }), 409, "file_busy");
    expectError(await api("DELETE", "/files", { query: { path: "/.stasis/agent" } }), 409, "file_busy");
  });

  it("a move across file systems is 409 cross_device", async () => {
    await sandbox.files.write("/root/moveme", "x");
    expectError(await api("POST", "/files/move", { body: JSON.stringify({ from: "/root/moveme", to: "/dev/moveme" }), type: "application/json" }), 409, "cross_device");
  });

  it("stdin written after its close is 409 stdin_closed", async () => {
    const handle = await sandbox.commands.start("cat >/dev/null; sleep 30", { stdin: true });
    const stdin = (body: object) => api("POST", `/processes/${handle.pid}/stdin`, { body: JSON.stringify(body), type: "application/json" });
    expect((await stdin({ data: "a", eof: true })).status).toBe(204);
    expectError(await stdin({ data: "late" }), 409, "stdin_closed");
    await handle.kill();
  });

  it("GET /files refuses what is not a readable regular file before sending headers", async () => {
    await sh("mkdir -p /root/odd && cd /root/odd && ln -sf missing dangling && ln -sf loop loop && ln -sf /root dirlink && mkfifo fifo && ln -sf /dev/zero zero");
    expectError(await api("GET", "/files", { query: { path: "/root/odd/dangling" } }), 404, "file_not_found");
    expectError(await api("GET", "/files", { query: { path: "/root/odd/loop" } }), 400, "symlink_loop");
    expectError(await api("GET", "/files", { query: { path: "/root/odd/dirlink" } }), 409, "is_a_directory");
    expectError(await api("GET", "/files", { query: { path: "/root/odd/fifo" } }), 409, "not_a_regular_file");
    expectError(await api("GET", "/files", { query: { path: "/dev/zero" } }), 409, "not_a_regular_file");
    expectError(await api("GET", "/files", { query: { path: "/root/odd/zero" } }), 409, "not_a_regular_file");
    // A symlink to a file reads the file, with its size.
    await sh("printf hello > /root/odd/real && ln -sf real /root/odd/link");
    const res = await fetch(`${daemon.conn.apiUrl}/v1/sandboxes/${sandbox.id}/files?path=/root/odd/link`, { headers: { authorization: `Bearer ${daemon.conn.apiKey}` } });
    expect(res.headers.get("x-file-size")).toBe("5");
    expect(await res.text()).toBe("hello");
  });

  it("a listing and a process list whose full reply would pass 4 MiB come back truncated, not as a timeout", async () => {
    // 3,500 symlinks with 1,000-byte targets (the most a 1 KiB-block disk holds): about 5 MiB of JSON in full.
    await sh(`python3 -c "import os; os.makedirs('/root/big'); t = ('/' + 't' * 199) * 5; [os.symlink(t, '/root/big/l%0200d' % i) for i in range(3500)]"`);
    const listed = await api("GET", "/files/list", { query: { path: "/root/big" } });
    expect(listed.status).toBe(200);
    const list = JSON.parse(listed.body) as { entries: unknown[]; truncated: boolean };
    expect(list.truncated).toBe(true);
    expect(list.entries.length).toBeGreaterThan(100);
    // Six processes with 1 MiB command lines each.
    const arg = "x".repeat(100 * 1024);
    for (let i = 0; i < 6; i++) await sandbox.commands.run(["true", ...Array.from({ length: 10 }, () => arg)]);
    const ps = await api("GET", "/processes");
    expect(ps.status).toBe(200);
    expect(JSON.parse(ps.body)).toMatchObject({ truncated: true });
  });

  it("an upload to a full disk is 507 insufficient_storage", async () => {
    await sandbox.commands.run(["sh", "-c", "dd if=/dev/zero of=/root/fill bs=1M 2>/dev/null; sync"], { timeoutMs: 120_000 });
    expectError(await api("PUT", "/files", { query: { path: "/root/more" }, body: new Uint8Array(4 * 1024 * 1024) }), 507, "insufficient_storage");
    await sh("rm -f /root/fill");
  });

  it("a create asking for more disk than the host has free is 507 insufficient_storage", async () => {
    const res = await fetch(`${daemon.conn.apiUrl}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${daemon.conn.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ runtime, diskMiB: 1024 * 1024 }),
    });
    const body = await res.text();
    expectError({ status: res.status, body }, 507, "insufficient_storage");
    expect(body).toMatch(/more than the \d+ MiB free/);
  });

  it("a create whose client gives up before the reply leaves no sandbox behind", async () => {
    const before = new Set((await Sandbox.list({ limit: 1000 }, daemon.conn)).sandboxes.map((x) => x.id));
    await expect(Sandbox.create({ runtime, ...daemon.conn, requestTimeoutMs: 30 })).rejects.toThrow(/no complete reply/);
    // The create goes on in the daemon, which then removes what it made for nobody.
    await vi.waitFor(async () => {
      const { sandboxes } = await Sandbox.list({ limit: 1000 }, daemon.conn);
      expect(sandboxes.filter((x) => !before.has(x.id)).map((x) => x.state)).toEqual([]);
    }, { timeout: 20_000, interval: 200 });
    expect(daemon.logs.join("")).toContain("the client went away before its create answered");
  });

  it.runIf(runtime === "crun")("io_uring is refused with EPERM", async () => {
    const out = await sh(`python3 -c "
import ctypes, ctypes.util
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
r = libc.syscall(425, 4, params)
print(r, ctypes.get_errno())
"`);
    expect(out.trim()).toBe("-1 1");
  });
});
