import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, startTestDaemon, type TestDaemon } from "./harness.js";

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe("stasis CLI against a real daemon", () => {
  let daemon: TestDaemon;
  let id = "";
  const local = mkdtempSync(join(tmpdir(), "stasis-cli-"));

  function stasis(args: string[], input?: string): Promise<CliResult> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, "--api-url", daemon.url, "--api-key", daemon.apiKey, ...args], { stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(input ?? "");
    });
  }

  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    rmSync(local, { recursive: true, force: true });
    await daemon?.destroy();
  });

  it("doctor checks this host and passes where the tests run", async () => {
    const r = await stasis(["doctor", "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; ok: boolean; severity: string; detail: string }[] };
    expect(report.ok).toBe(true);
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    for (const name of ["root", "runsc (gVisor)", "crun", "cgroups", "freezer", "guest agent", "template base", "nft", "build network", "overlayfs", "loop devices"]) {
      expect(byName.get(name), name).toMatchObject({ ok: true });
    }
    expect(byName.get("build network")?.detail).toMatch(/^template RUN steps go out by \S+/);
  });

  it("creates a sandbox and prints only its id on stdout", async () => {
    const r = await stasis(["sandbox", "create", "--meta", "via=cli", "--env", "FOO=bar"]);
    expect(r.code).toBe(0);
    id = r.stdout.trim();
    expect(id).toMatch(/^sbx_[a-z0-9]{16}$/);
  });

  it("execs with live output and the command's exit code", async () => {
    const ok = await stasis(["exec", id, "--", "python3", "-c", "import os; print(os.environ['FOO'])"]);
    expect(ok).toMatchObject({ code: 0, stdout: "bar\n" });
    const failing = await stasis(["exec", id, "--", "sh -c 'echo to-stderr >&2; exit 7'"]);
    expect(failing.code).toBe(7);
    expect(failing.stderr).toContain("to-stderr");
    expect(failing.stdout).toBe("");
  });

  it("pipes stdin into a command with --stdin", async () => {
    const r = await stasis(["exec", id, "--stdin", "--", "tr a-z A-Z"], "shout\n");
    expect(r).toMatchObject({ code: 0, stdout: "SHOUT\n" });
  });

  it("puts, gets and lists files", async () => {
    const src = join(local, "in.txt");
    writeFileSync(src, "line one\nline two\n");
    expect((await stasis(["files", "put", id, src, "/root/in.txt"])).code).toBe(0);
    const got = await stasis(["files", "get", id, "/root/in.txt"]);
    expect(got.stdout).toBe("line one\nline two\n");
    const dest = join(local, "out.txt");
    expect((await stasis(["files", "get", id, "/root/in.txt", dest])).code).toBe(0);
    expect(readFileSync(dest, "utf8")).toBe("line one\nline two\n");
    const ls = await stasis(["--json", "files", "ls", id, "/root"]);
    const listing = JSON.parse(ls.stdout) as { entries: { name: string }[] };
    expect(listing.entries.map((e) => e.name)).toContain("in.txt");
  });

  it("lists and gets sandboxes as JSON, and reports errors with their code", async () => {
    // --json prints every page as one array.
    const list = JSON.parse((await stasis(["--json", "sandbox", "list", "--meta", "via=cli"])).stdout) as { id: string }[];
    expect(list.map((s) => s.id)).toEqual([id]);
    const get = JSON.parse((await stasis(["--json", "sandbox", "get", id])).stdout) as { state: string };
    expect(get.state).toBe("running");
    const missing = await stasis(["sandbox", "get", "sbx_0000000000000000"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("sandbox_not_found");
  });

  it("kills the sandbox", async () => {
    expect((await stasis(["sandbox", "kill", id])).code).toBe(0);
    expect((await stasis(["sandbox", "get", id])).code).toBe(1);
  });

  it("issues an E2B key that opens the E2B surface, lists it, and revokes it", async () => {
    const created = await stasis(["e2b", "key", "create", "--name", "cli-test"]);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^e2b_[0-9a-f]{40}$/);
    expect(created.stderr).toMatch(/E2B_API_URL=/);
    const e2bList = () => fetch(`${daemon.url}/v2/sandboxes`, { headers: { "X-API-KEY": key } });
    expect((await e2bList()).status).toBe(200);
    const listed = JSON.parse((await stasis(["e2b", "key", "list", "--json"])).stdout) as { id: string; name: string; lastUsedAt: string | null }[];
    const entry = listed.find((k) => k.name === "cli-test");
    expect(entry?.lastUsedAt).not.toBeNull();
    expect(JSON.stringify(listed)).not.toContain(key);
    expect((await stasis(["e2b", "key", "revoke", entry!.id])).code).toBe(0);
    expect((await e2bList()).status).toBe(401);
  });

  it("builds a template from a directory, shows cached steps, points at a failing step, and removes it", async () => {
    const name = `cli-tpl-${Date.now().toString(36)}`;
    const dir = join(local, "tpl");
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    writeFileSync(join(dir, "note.txt"), "copied by the CLI\n");
    writeFileSync(join(dir, "Dockerfile"), `FROM base\nCOPY note.txt /opt/note.txt\nRUN echo step-output-${name}\n`);
    const built = await stasis(["template", "build", dir, "--name", name]);
    expect(built.code).toBe(0);
    expect(built.stderr).toMatch(/Step 2\/3 : COPY note.txt \/opt\/note.txt/);
    expect(built.stderr).toContain(`step-output-${name}`);
    expect(built.stdout).toMatch(new RegExp(`${name}:1`));
    const again = await stasis(["template", "build", dir, "--name", name]);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/Step 3\/3 : RUN .* \(cached\)/);

    const sbx = (await stasis(["sandbox", "create", "--template", name])).stdout.trim();
    expect((await stasis(["exec", sbx, "--", "cat", "/opt/note.txt"])).stdout).toBe("copied by the CLI\n");
    expect((await stasis(["sandbox", "kill", sbx])).code).toBe(0);

    writeFileSync(join(dir, "Dockerfile"), "FROM base\nCOPY note.txt /opt/note.txt\nRUN exit 7\n");
    const failed = await stasis(["template", "build", dir, "--name", name]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/step 3/i);
    expect(failed.stderr).toMatch(/line 3/);

    const listed = JSON.parse((await stasis(["template", "list", "--json"])).stdout) as { ref: string }[];
    expect(listed.map((t) => t.ref)).toContain(`${name}:1`);
    expect((await stasis(["template", "rm", name])).code).toBe(0);
    expect((await stasis(["template", "get", name])).code).toBe(1);
  }, 120_000);
});
