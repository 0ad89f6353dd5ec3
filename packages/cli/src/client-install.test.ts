import { execFile, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The client side of the CLI (and the SDK) must install and run without the daemon's native modules:
// these tests run the built CLI (packages/cli/dist, made by `npx tsc -b`) in child processes.
const REPO = new URL("../../..", import.meta.url).pathname;
const CLI_DIR = join(REPO, "packages/cli");
const MAIN = join(CLI_DIR, "dist/main.js");
const ID = "sbx_0123456789abcdef";
const SANDBOX = {
  id: ID, template: "base", runtime: "gvisor", state: "running", stateReason: null, cpu: 1, memoryMiB: 512, diskMiB: 4096,
  env: {}, metadata: {}, timeoutMs: 300000, onTimeout: "standby", idleTimeoutMs: 15000, hibernateAfterMs: 600000,
  createdAt: "2025-01-01T00:00:00.000Z", expiresAt: "2025-01-01T00:05:00.000Z", standbySince: null, standbyReason: null,
  forkedFrom: null, createdVia: "cold",
};

/** Resolve hook that fails the process as soon as anything resolves to the daemon, the bench or SQLite. */
const FORBID_HOOKS = `
const forbidden = /^(better-sqlite3|@stasis\\/(daemon|bench))(\\/|$)/;
const forbiddenFile = /\\/(packages\\/(daemon|bench)|node_modules\\/better-sqlite3)\\//;
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (forbidden.test(specifier) || forbiddenFile.test(resolved.url)) throw new Error("forbidden module loaded: " + specifier);
  return resolved;
}`;
const REGISTER = `import { register } from "node:module";\nregister("./forbid-hooks.mjs", import.meta.url);\n`;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function node(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env: { ...process.env, ...env, STASIS_API_KEY: "sk_test" }, timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let tmp: string;
let server: Server;
let apiUrl: string;
const requests: string[] = [];

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npx tsc -b\` first`);
  tmp = mkdtempSync(join(tmpdir(), "stasis-cli-client-"));
  writeFileSync(join(tmp, "forbid-hooks.mjs"), FORBID_HOOKS);
  writeFileSync(join(tmp, "forbid.mjs"), REGISTER);
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.setHeader("content-type", "application/json");
    if (req.method === "GET" && req.url?.startsWith("/v1/sandboxes")) res.end(JSON.stringify({ sandboxes: [SANDBOX], nextCursor: null }));
    else res.writeHead(404).end(JSON.stringify({ error: { code: "route_not_found", message: "no route" } }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(tmp, { recursive: true, force: true });
});

// Each case starts node processes: generous on a loaded machine.
describe("client commands in the workspace (where the daemon is installed)", { timeout: 60_000 }, () => {
  const guarded = (...args: string[]) => node(["--import", join(tmp, "forbid.mjs"), MAIN, ...args]);

  it("list sandboxes without loading the daemon, the bench or better-sqlite3", async () => {
    const ran = await guarded("sandbox", "list", "--api-url", apiUrl);
    expect(ran.stderr).toBe("");
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain(ID);
    expect(requests).toContain("GET /v1/sandboxes");
  });

  it("show help, bench's sections included, without loading them", async () => {
    const [help, bench] = await Promise.all([guarded("--help"), guarded("bench", "--help")]);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: stasis <command>/);
    expect(bench.code, bench.stderr).toBe(0);
    expect(bench.stdout).toContain("only these parts: create, templates, exec");
  });

  it("serve MCP on stdio (stasis mcp) without loading the daemon, the bench or better-sqlite3", async () => {
    const child = spawn(process.execPath, ["--import", join(tmp, "forbid.mjs"), MAIN, "mcp", "--api-url", apiUrl], { env: { ...process.env, STASIS_API_KEY: "sk_test" } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
    child.stdin.write(`${JSON.stringify(initialize)}\n`);
    child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`);
    child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "list_sandboxes", arguments: {} } })}\n`);
    await new Promise<void>((resolve) => {
      const check = () => (stdout.includes('"id":2') ? resolve() : setTimeout(check, 50));
      check();
    });
    child.stdin.end();
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const replies = stdout.trim().split("\n").map((line) => JSON.parse(line) as { id: number; result: { serverInfo?: { name: string }; structuredContent?: { sandboxes: { id: string }[] } } });
    expect(replies[0]!.result.serverInfo?.name).toBe("stasis");
    expect(replies[1]!.result.structuredContent?.sandboxes[0]?.id).toBe(ID);
  });

  it("would catch a command that loads the daemon (the guard works)", async () => {
    const ran = await guarded("doctor", "--data-dir", join(tmp, "data"));
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain("forbidden module loaded: @stasis/daemon");
  });
});

/** A node_modules as `npm install @stasis/cli` makes it, without the optional @stasis/daemon and @stasis/bench. */
function clientInstall(root: string): string {
  const modules = join(root, "node_modules");
  const cli = join(modules, "@stasis/cli");
  mkdirSync(cli, { recursive: true });
  cpSync(join(CLI_DIR, "package.json"), join(cli, "package.json"));
  cpSync(join(CLI_DIR, "dist"), join(cli, "dist"), { recursive: true });
  // The CLI's dependencies, linked: they resolve their own dependencies from the workspace, as installed.
  const { dependencies } = JSON.parse(readFileSync(join(CLI_DIR, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  for (const name of Object.keys(dependencies)) {
    mkdirSync(dirname(join(modules, name)), { recursive: true });
    symlinkSync(join(REPO, "packages", name.replace("@stasis/", "")), join(modules, name));
  }
  return join(cli, "dist/main.js");
}

describe("a CLI installed without @stasis/daemon and @stasis/bench", { timeout: 60_000 }, () => {
  let main: string;
  beforeAll(() => {
    main = clientInstall(join(tmp, "install"));
  });

  it("runs client commands", async () => {
    const ran = await node([main, "sandbox", "list", "--json", "--api-url", apiUrl]);
    expect(ran.stderr).toBe("");
    expect(ran.code).toBe(0);
    expect(JSON.parse(ran.stdout)).toMatchObject([{ id: ID }]);
  });

  it("says what to install for the daemon-side commands", async () => {
    const serve = await node([main, "serve", "--port", "0", "--data-dir", join(tmp, "data")]);
    expect(serve.code).toBe(1);
    expect(serve.stderr).toContain("error [missing_package]: stasis serve needs @stasis/daemon, which is not installed here");
    expect(serve.stderr).toContain("npm install @stasis/daemon");
    const bench = await node([main, "bench", "--compare", "a.json", "--to", "b.json"]);
    expect(bench.code).toBe(1);
    expect(bench.stderr).toContain("stasis bench needs @stasis/bench");
  });
});

const NATIVE_MARKERS = ["bindings", "node-gyp-build", "prebuild-install", "node-addon-api", "nan", "node-pre-gyp", "@mapbox/node-pre-gyp"];

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  scripts?: Record<string, string>;
  gypfile?: boolean;
}

/** The directory node would load `name` from when required from `fromDir` (node_modules lookup). */
function packageDir(name: string, fromDir: string): string {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`${name} is not installed (looked up from ${fromDir})`);
  }
}

/** Every package `npm install` brings for the package in `dir`: its dependencies, transitively. */
function installClosure(dir: string, seen = new Map<string, Manifest & { dir: string }>()): Map<string, Manifest & { dir: string }> {
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;
  for (const name of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) {
    const depDir = packageDir(name, dir);
    if (seen.has(depDir)) continue;
    seen.set(depDir, { ...(JSON.parse(readFileSync(join(depDir, "package.json"), "utf8")) as Manifest), dir: depDir });
    installClosure(depDir, seen);
  }
  return seen;
}

function nativeReasons(pkg: Manifest & { dir: string }): string[] {
  const reasons: string[] = [];
  if (pkg.gypfile || existsSync(join(pkg.dir, "binding.gyp"))) reasons.push("has a binding.gyp");
  for (const script of ["preinstall", "install", "postinstall"]) if (pkg.scripts?.[script]) reasons.push(`runs an ${script} script`);
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) if (NATIVE_MARKERS.includes(dep)) reasons.push(`depends on ${dep}`);
  return reasons.map((r) => `${pkg.name} ${r}`);
}

describe("install closure", () => {
  it.each(["sdk", "mcp", "cli", "protocol"])("@stasis/%s brings no native module and not the daemon", (pkg) => {
    const closure = [...installClosure(join(REPO, "packages", pkg)).values()];
    const names = closure.map((p) => p.name);
    expect(names).not.toContain("@stasis/daemon");
    expect(names).not.toContain("@stasis/bench");
    expect(names).not.toContain("better-sqlite3");
    expect(closure.flatMap(nativeReasons)).toEqual([]);
    if (pkg !== "protocol") expect(names).toContain("@stasis/protocol");
  });

  it("finds the native module in the daemon's closure (the check works)", () => {
    const reasons = [...installClosure(join(REPO, "packages/daemon")).values()].flatMap(nativeReasons);
    expect(reasons.some((r) => r.startsWith("better-sqlite3 "))).toBe(true);
  });
});
