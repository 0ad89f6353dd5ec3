import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { run } from "./run.js";

const ID = "sbx_0123456789abcdef";
const FORKS = ["sbx_aaaaaaaaaaaaaaaa", "sbx_bbbbbbbbbbbbbbbb"];
const sandbox = {
  id: ID,
  template: "base",
  runtime: "gvisor",
  state: "running",
  stateReason: null,
  cpu: 1,
  memoryMiB: 512,
  diskMiB: 4096,
  env: {},
  metadata: { team: "ml" },
  timeoutMs: 300000,
  onTimeout: "standby",
  idleTimeoutMs: 15000,
  hibernateAfterMs: 600000,
  createdAt: "2025-01-01T00:00:00.000Z",
  expiresAt: "2025-01-01T00:05:00.000Z",
  standbySince: null,
  standbyReason: null,
  forkedFrom: null,
  createdVia: "cold",
};
const IDLE = "sbx_1d1e1d1e1d1e1d1e";
const KEY = `e2b_${"0123456789abcdef".repeat(2)}01234567`;
const keyResource = { id: "ek_000000000001", name: "ci", prefix: KEY.slice(0, 10), createdAt: "2025-01-02T03:04:05.678Z", lastUsedAt: null };

const template = {
  name: "py",
  version: 2,
  ref: "py:2",
  latest: true,
  source: "dockerfile",
  from: "debian:bookworm",
  builtAt: "2025-01-01T00:00:00.000Z",
  buildMs: 1500,
  layers: 3,
  sizeBytes: 52_428_800,
  env: { PATH: "/usr/bin:/bin" },
  workdir: "/app",
  user: null,
  start: "python -m http.server",
  ready: "curl -sf localhost:8000",
  resources: { cpu: 1, memoryMiB: 512, diskMiB: 4096 },
  pool: 0,
  snapshot: { takenAt: "2025-01-01T00:00:02.000Z", memoryBytes: 104_857_600, diskBytes: 1_048_576 },
};
const oldTemplate = { ...template, version: 1, ref: "py:1", latest: false, from: null, source: "oci", pool: 2, snapshot: null, buildMs: null };
const buildEvents = [
  { type: "step", step: 1, total: 3, instruction: "FROM debian:bookworm", cached: true },
  { type: "step", step: 2, total: 3, instruction: "RUN pip install x", cached: false },
  { type: "log", step: 2, data: "Collecting x\nInstalling x\n" },
  { type: "progress", message: "committing layer" },
  { type: "step", step: 3, total: 3, instruction: "COPY . /app", cached: false },
  { type: "done", template, durationMs: 1500, cachedSteps: 1, builtSteps: 2 },
];
const failedEvents = [
  buildEvents[0],
  { type: "step", step: 2, total: 3, instruction: "RUN false", cached: false },
  { type: "error", code: "template_build_failed", message: "step 2/3 RUN false: exit code 1", step: 2, instruction: "RUN false", line: 4 },
];

interface Call {
  method: string;
  url: URL;
  body: string | undefined;
  /** A streamed (tar) body, read to the end. */
  raw?: Buffer;
  headers?: Record<string, string>;
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const ndjson = (events: unknown[]) => new Response(events.map((e) => `${JSON.stringify(e)}\n`).join(""), { headers: { "content-type": "application/x-ndjson" } });
const exit = (exitCode: number) => ({ type: "exit", exitCode, signal: null, timedOut: false, durationMs: 3 });

/** A daemon in a fetch function: enough routes for the CLI's output paths. */
function fakeDaemon(calls: Call[]): typeof fetch {
  return async (input, init) => {
    const url = new URL(String(input));
    const method = init?.method ?? "GET";
    const body = typeof init?.body === "string" ? init.body : undefined;
    const raw = init?.body instanceof ReadableStream || init?.body instanceof Blob ? Buffer.from(await new Response(init.body).arrayBuffer()) : undefined;
    calls.push({ method, url, body, ...(raw ? { raw } : {}), headers: init?.headers as Record<string, string> });
    const path = url.pathname;
    if (path === "/v1/templates/build" || path === "/v1/templates/import") return ndjson(url.searchParams.get("name") === "failing" ? failedEvents : buildEvents);
    if (path === "/v1/templates" && method === "GET") return json(200, { templates: [template, oldTemplate] });
    if (path === "/v1/templates/py%3A2" && method === "GET") return json(200, template);
    if (path === "/v1/templates/py%3A2" && method === "PUT") {
      const changes = JSON.parse(body!) as { pool?: number; resources?: object };
      return json(200, { ...template, pool: changes.pool ?? template.pool, resources: { ...template.resources, ...changes.resources } });
    }
    if (path === "/v1/templates/py%3A1" && method === "DELETE") return new Response(null, { status: 204 });
    if (path.startsWith("/v1/templates/")) return json(404, { error: { code: "template_not_found", message: `no template ${decodeURIComponent(path.split("/").pop()!)}`, retryable: false } });
    if (path === `/v1/sandboxes/${ID}` && method === "GET") return json(200, sandbox);
    if (path === "/v1/sandboxes" && method === "GET") return json(200, { sandboxes: [sandbox], nextCursor: null });
    if (path === `/v1/sandboxes/${IDLE}` && method === "GET") return json(200, { ...sandbox, id: IDLE, state: "paused", expiresAt: null, standbySince: "2025-01-01T00:01:00.000Z", standbyReason: "idle" });
    if (path === `/v1/sandboxes/${ID}/hibernate`) return json(200, { ...sandbox, state: "hibernated", expiresAt: null, standbySince: "2025-01-01T00:01:00.000Z", standbyReason: "requested" });
    if (path === "/v1/e2b/keys" && method === "POST") return json(201, { ...keyResource, name: (JSON.parse(body!) as { name?: string }).name ?? "default", key: KEY });
    if (path === "/v1/e2b/keys" && method === "GET") return json(200, { keys: [keyResource, { ...keyResource, id: "ek_000000000002", name: "old", lastUsedAt: "2025-01-03T00:00:00.000Z" }] });
    if (path === `/v1/e2b/keys/${keyResource.id}` && method === "DELETE") return new Response(null, { status: 204 });
    if (path.startsWith("/v1/e2b/keys/")) return json(404, { error: { code: "key_not_found", message: `no E2B key ${path.split("/").pop()}`, retryable: false } });
    if (path === `/v1/sandboxes/${ID}/fork`) {
      const { count } = JSON.parse(body!) as { count: number };
      return json(201, { sandboxes: FORKS.slice(0, count).map((id) => ({ ...sandbox, id, forkedFrom: ID })) });
    }
    if (path === `/v1/sandboxes/${ID}/standby`) return json(200, { ...sandbox, ...(JSON.parse(body!) as object) });
    if (path.endsWith("/commands/stream")) return ndjson([{ type: "start", pid: 5 }, { type: "stdout", data: "out\n" }, { type: "stderr", data: "err\n" }, exit(3)]);
    if (path.endsWith("/processes") && method === "POST") return json(201, { pid: 6 });
    if (path.endsWith("/processes/6/stdin")) return new Response(null, { status: 204 });
    if (path.endsWith("/processes/6/stream")) {
      // The echo only finishes once stdin has been closed, like `cat` would.
      await vi.waitFor(() => expect(calls.some((c) => c.body?.includes('"eof":true'))).toBe(true));
      const fed = calls.filter((c) => c.url.pathname.endsWith("/stdin")).map((c) => (JSON.parse(c.body!) as { data: string }).data).join("");
      return ndjson([{ type: "start", pid: 6 }, { type: "stdout", data: fed }, exit(0)]);
    }
    return json(404, { error: { code: "sandbox_not_found", message: `no sandbox at ${path}`, retryable: false } });
  };
}

function capture(stdinText = "") {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: string[] = [];
  const err: string[] = [];
  stdout.on("data", (d: Buffer) => out.push(d.toString()));
  stderr.on("data", (d: Buffer) => err.push(d.toString()));
  return { io: { stdout, stderr, stdin: Readable.from([stdinText]) }, out: () => out.join(""), err: () => err.join("") };
}

describe("run", () => {
  let calls: Call[];
  beforeEach(() => {
    calls = [];
    vi.stubGlobal("fetch", fakeDaemon(calls));
  });
  afterEach(() => vi.unstubAllGlobals());
  const env = { STASIS_API_URL: "http://daemon.test", STASIS_API_KEY: "k" };
  const runLine = (line: string, c = capture()) => run(line.split(" "), c.io, { ...env });

  it("exec streams stdout and stderr apart and exits with the command's code", async () => {
    const c = capture();
    expect(await runLine(`exec ${ID} -- sh -c exit`, c)).toBe(3);
    expect(c.out()).toBe("out\n");
    expect(c.err()).toBe("err\n");
    expect(JSON.parse(calls.at(-1)!.body!)).toEqual({ env: {}, cmd: ["sh", "-c", "exit"] });
  });

  it("exec --stdin starts a process, feeds it the CLI's stdin and closes it", async () => {
    const c = capture("hello\nworld\n");
    expect(await run(["--api-url", "http://daemon.test", "exec", ID, "--stdin", "--", "cat"], c.io, { STASIS_API_KEY: "k" })).toBe(0);
    expect(c.out()).toBe("hello\nworld\n");
    expect(JSON.parse(calls.find((x) => x.url.pathname.endsWith("/processes"))!.body!)).toMatchObject({ cmd: ["cat"], stdin: true });
  });

  it("prints a sandbox table, or JSON with --json", async () => {
    const table = capture();
    expect(await runLine("sandbox list --meta team=ml", table)).toBe(0);
    expect(table.out()).toMatch(/^ID\s+STATE\s+RUNTIME\s+TEMPLATE\s+CREATED\s+EXPIRES\n/);
    expect(table.out()).toContain(`${ID}  running  gvisor   base`);
    expect(calls.at(-1)!.url.searchParams.get("metadata")).toBe("team=ml");
    const machine = capture();
    expect(await runLine("sandbox list --json", machine)).toBe(0);
    expect(JSON.parse(machine.out())).toEqual([sandbox]);
  });

  it("shows one sandbox with its standby settings", async () => {
    const c = capture();
    expect(await runLine(`sandbox get ${ID}`, c)).toBe(0);
    expect(c.out()).toContain("standby:   idle-timeout=15s hibernate-after=10m on-timeout=standby\n");
    expect(c.out()).toContain("forked:    -\n");
  });

  it("shows why a sandbox is in standby and since when", async () => {
    const c = capture();
    expect(await runLine(`sandbox get ${IDLE}`, c)).toBe(0);
    expect(c.out()).toContain("state:     paused (idle) since 2025-01-01 00:01:00Z\n");
    const awake = capture();
    expect(await runLine(`sandbox get ${ID}`, awake)).toBe(0);
    expect(awake.out()).toContain("state:     running\n");
  });

  it("hibernates each sandbox and prints its new state", async () => {
    const c = capture();
    expect(await runLine(`sandbox hibernate ${ID}`, c)).toBe(0);
    expect(c.out()).toBe(`${ID} hibernated\n`);
    expect(calls.at(-1)).toMatchObject({ method: "POST", url: new URL(`http://daemon.test/v1/sandboxes/${ID}/hibernate`) });
  });

  it("forks and prints the new ids, or their resources with --json", async () => {
    const c = capture();
    expect(await runLine(`sandbox fork ${ID} --count 2`, c)).toBe(0);
    expect(c.out()).toBe(`${FORKS.join("\n")}\n`);
    expect(JSON.parse(calls.at(-1)!.body!)).toEqual({ count: 2 });
    const machine = capture();
    expect(await runLine(`sandbox fork ${ID} --json`, machine)).toBe(0);
    expect(JSON.parse(machine.out())).toEqual([{ ...sandbox, id: FORKS[0], forkedFrom: ID }]);
  });

  it("sends only the standby flags given and prints the resulting settings", async () => {
    const c = capture();
    expect(await runLine(`sandbox standby ${ID} --idle-timeout off --on-timeout kill`, c)).toBe(0);
    expect(JSON.parse(calls.at(-1)!.body!)).toEqual({ idleTimeoutMs: 0, onTimeout: "kill" });
    expect(c.out()).toBe("idle-timeout=off hibernate-after=10m on-timeout=kill\n");
  });

  describe("e2b keys", () => {
    it("creates a key: the key alone on stdout, how to use it on stderr", async () => {
      const c = capture();
      expect(await run(["--api-url", "http://daemon.test:7070/", "e2b", "key", "create", "--name", "ci"], c.io, { STASIS_API_KEY: "k" })).toBe(0);
      expect(c.out()).toBe(`${KEY}\n`);
      expect(calls.at(-1)).toMatchObject({ method: "POST", url: new URL("http://daemon.test:7070/v1/e2b/keys") });
      expect(JSON.parse(calls.at(-1)!.body!)).toEqual({ name: "ci" });
      expect(c.err()).toMatch(/shown only this once/);
      expect(c.err()).toContain(`  export E2B_API_KEY=${KEY} E2B_API_URL=http://daemon.test:7070 E2B_SANDBOX_URL=http://daemon.test:7070\n`);
    });

    it("creates a key without a name, with the daemon URL from the environment", async () => {
      const c = capture();
      expect(await runLine("e2b key create", c)).toBe(0);
      expect(JSON.parse(calls.at(-1)!.body!)).toEqual({});
      expect(c.err()).toContain("E2B_API_URL=http://daemon.test E2B_SANDBOX_URL=http://daemon.test\n");
    });

    it("creates a key and prints the whole reply with --json", async () => {
      const c = capture();
      expect(await runLine("e2b key create --name ci --json", c)).toBe(0);
      expect(JSON.parse(c.out())).toEqual({ ...keyResource, key: KEY });
    });

    it("lists keys as a table, or JSON with --json", async () => {
      const c = capture();
      expect(await runLine("e2b key list", c)).toBe(0);
      expect(c.out()).toBe(
        [
          "ID               NAME  PREFIX      CREATED               LAST USED",
          "ek_000000000001  ci    e2b_012345  2025-01-02 03:04:05Z  never",
          "ek_000000000002  old   e2b_012345  2025-01-02 03:04:05Z  2025-01-03 00:00:00Z",
          "",
        ].join("\n"),
      );
      expect(calls.at(-1)).toMatchObject({ method: "GET" });
      const machine = capture();
      expect(await runLine("e2b key list --json", machine)).toBe(0);
      expect(JSON.parse(machine.out())).toEqual([keyResource, { ...keyResource, id: "ek_000000000002", name: "old", lastUsedAt: "2025-01-03T00:00:00.000Z" }]);
    });

    it("revokes each key, reports each failure and exits 1 if any failed", async () => {
      const ok = capture();
      expect(await runLine(`e2b key revoke ${keyResource.id}`, ok)).toBe(0);
      expect(ok.err()).toBe(`revoked ${keyResource.id}\n`);
      const c = capture();
      expect(await runLine(`e2b key revoke ek_ffffffffffff ${keyResource.id}`, c)).toBe(1);
      expect(calls.filter((x) => x.method === "DELETE").map((x) => x.url.pathname)).toEqual([
        `/v1/e2b/keys/${keyResource.id}`,
        "/v1/e2b/keys/ek_ffffffffffff",
        `/v1/e2b/keys/${keyResource.id}`,
      ]);
      expect(c.err()).toBe(`error [key_not_found]: no E2B key ek_ffffffffffff\nrevoked ${keyResource.id}\n`);
    });

    it("has help for both group levels", async () => {
      const group = capture();
      expect(await runLine("e2b key --help", group)).toBe(0);
      expect(group.out()).toContain("Usage: stasis e2b key <command>");
      expect(group.out()).toMatch(/ {2}revoke {2}Revoke E2B API keys by id/);
      const outer = capture();
      expect(await runLine("e2b --help", outer)).toBe(0);
      expect(outer.out()).toContain("key create");
      const missing = capture();
      expect(await runLine("e2b key", missing)).toBe(1);
      expect(missing.err()).toBe("error [usage]: missing subcommand for 'e2b key'\nsee 'stasis e2b key --help'\n");
    });
  });

  describe("templates", () => {
    const dir = mkdtempSync(join(tmpdir(), "stasis-cli-"));
    writeFileSync(join(dir, "Dockerfile"), "FROM debian:bookworm\n");
    writeFileSync(join(dir, "app.py"), "print(1)\n");
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("builds through the daemon, showing steps and logs, then a summary", async () => {
      const c = capture();
      expect(await runLine(`template build ${dir} --name py --no-cache --pool 1`, c)).toBe(0);
      expect(c.err()).toBe(
        [
          "Step 1/3 : FROM debian:bookworm (cached)",
          "Step 2/3 : RUN pip install x",
          "  Collecting x",
          "  Installing x",
          " ---> committing layer",
          "Step 3/3 : COPY . /app",
          "",
        ].join("\n"),
      );
      expect(c.out()).toBe("Built py:2 in 1.5s: 1 step cached, 2 built; 50 MiB; snapshot: yes\n");
      const call = calls.at(-1)!;
      expect(call).toMatchObject({ method: "POST", headers: { "content-type": "application/x-tar" } });
      expect(Object.fromEntries(call.url.searchParams)).toEqual({ name: "py", noCache: "true", pool: "1" });
      // Tar headers carry the names in the clear.
      expect(call.raw!.includes("app.py")).toBe(true);
      expect(call.raw!.includes("Dockerfile")).toBe(true);
    });

    it("prints the build's events as NDJSON with --json", async () => {
      const c = capture();
      expect(await runLine(`template build ${dir} --name py --json`, c)).toBe(0);
      expect(c.out().trimEnd().split("\n").map((l) => JSON.parse(l) as unknown)).toEqual(buildEvents);
      expect(c.err()).toBe("");
    });

    it("takes -f as a path from here when it lies inside DIR", async () => {
      expect(await runLine(`template build ${dir} --name py -f ${join(dir, "Dockerfile")}`)).toBe(0);
      expect(calls.at(-1)!.url.searchParams.get("file")).toBe("Dockerfile");
      const outside = capture();
      expect(await runLine(`template build ${dir} --name py -f ${join(dir, "..")}`, outside)).toBe(1);
      expect(outside.err()).toMatch(/is not inside the build context/);
    });

    it("exits 1 on a failed build, naming the step and line", async () => {
      const c = capture();
      expect(await runLine(`template build ${dir} --name failing`, c)).toBe(1);
      expect(c.err()).toBe(
        [
          "Step 1/3 : FROM debian:bookworm (cached)",
          "Step 2/3 : RUN false",
          "error [template_build_failed]: step 2/3 RUN false: exit code 1",
          "  at step 2 (RUN false), line 4",
          "",
        ].join("\n"),
      );
      expect(c.out()).toBe("");
      const machine = capture();
      expect(await runLine(`template build ${dir} --name failing --json`, machine)).toBe(1);
      expect(JSON.parse(machine.out().trimEnd().split("\n").pop()!)).toEqual(failedEvents[2]);
    });

    it("points the old `template build base` at --builtin", async () => {
      const c = capture();
      expect(await runLine("template build base --name base", c)).toBe(1);
      expect(c.err()).toMatch(/^error \[usage\]: build context 'base' is not a directory; to build the built-in template 'base' on this host: stasis template build --builtin base\n/);
      expect(calls).toEqual([]);
    });

    it("imports an archive", async () => {
      const archive = join(dir, "image.tar");
      writeFileSync(archive, "docker save output");
      const c = capture();
      expect(await runLine(`template import py ${archive} --image python:3.12`, c)).toBe(0);
      expect(c.out()).toBe("Imported py:2 in 1.5s: 1 step cached, 2 built; 50 MiB; snapshot: yes\n");
      expect(calls.at(-1)!.url.pathname).toBe("/v1/templates/import");
      expect(Object.fromEntries(calls.at(-1)!.url.searchParams)).toEqual({ name: "py", image: "python:3.12" });
      expect(calls.at(-1)!.raw!.toString()).toBe("docker save output");
    });

    it("lists templates as a table, or JSON with --json", async () => {
      const c = capture();
      expect(await runLine("template list", c)).toBe(0);
      expect(c.out()).toBe(
        [
          "NAME  VERSION  LATEST  SOURCE      FROM             SIZE    SNAPSHOT  POOL  BUILT",
          "py    2        yes     dockerfile  debian:bookworm  50 MiB  yes       0     2025-01-01 00:00:00Z",
          "py    1        -       oci         -                50 MiB  no        2     2025-01-01 00:00:00Z",
          "",
        ].join("\n"),
      );
      const machine = capture();
      expect(await runLine("template list --json", machine)).toBe(0);
      expect(JSON.parse(machine.out())).toEqual([template, oldTemplate]);
    });

    it("shows one version", async () => {
      const c = capture();
      expect(await runLine("template get py:2", c)).toBe(0);
      expect(c.out()).toContain("ref:       py:2 (latest)\n");
      expect(c.out()).toContain("built:     2025-01-01 00:00:00Z in 1.5s\n");
      expect(c.out()).toContain("resources: cpu=1 memory=512 MiB disk=4096 MiB\n");
      expect(c.out()).toContain("snapshot:  taken 2025-01-01 00:00:02Z (memory 100 MiB, disk 1.0 MiB)\n");
    });

    it("sets the pool and resources with PUT", async () => {
      const c = capture();
      expect(await runLine("template set py:2 --pool 3 --memory 1024", c)).toBe(0);
      expect(calls.at(-1)).toMatchObject({ method: "PUT" });
      expect(JSON.parse(calls.at(-1)!.body!)).toEqual({ pool: 3, resources: { memoryMiB: 1024 } });
      expect(c.out()).toBe("py:2 pool=3 cpu=1 memory=1024 MiB disk=4096 MiB\n");
    });

    it("deletes each ref, reporting each failure", async () => {
      const c = capture();
      expect(await runLine("template delete nope py:1", c)).toBe(1);
      expect(c.err()).toBe("error [template_not_found]: no template nope\ndeleted py:1\n");
      expect(calls.map((x) => x.method)).toEqual(["DELETE", "DELETE"]);
    });

    it("lists rm with its alias in the group's help", async () => {
      const c = capture();
      expect(await runLine("template --help", c)).toBe(0);
      expect(c.out()).toMatch(/ {2}rm, delete {2}Delete template versions/);
      expect(c.out()).toContain("  build ");
    });
  });

  it("prints API errors as `error [code]: message` and exits 1", async () => {
    const c = capture();
    expect(await runLine("sandbox get sbx_ffffffffffffffff", c)).toBe(1);
    expect(c.out()).toBe("");
    expect(c.err()).toBe("error [sandbox_not_found]: no sandbox at /v1/sandboxes/sbx_ffffffffffffffff\n");
  });

  it("keeps going through a list of sandboxes to kill and reports each failure", async () => {
    const c = capture();
    expect(await runLine(`sandbox kill sbx_ffffffffffffffff ${ID}`, c)).toBe(1);
    expect(calls.filter((x) => x.method === "DELETE")).toHaveLength(2);
  });

  it("prints help to stdout and usage errors to stderr", async () => {
    const help = capture();
    expect(await runLine("files --help", help)).toBe(0);
    expect(help.out()).toContain("Usage: stasis files <command>");
    const bad = capture();
    expect(await runLine("files ls", bad)).toBe(1);
    expect(bad.err()).toBe("error [usage]: missing arguments: stasis files ls ID PATH [--depth N] [--json]\nsee 'stasis files ls --help'\n");
  });
});
