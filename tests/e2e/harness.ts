import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createHash, randomBytes } from "node:crypto";
import { Sandbox, type ConnectionOptions } from "@stasis/sdk";

export const REPO = new URL("../..", import.meta.url).pathname;
export const CLI = join(REPO, "packages/cli/dist/main.js");
/** Tests share the templates built by set-up; everything else is private to one test daemon. */
export const TEMPLATES_DIR = process.env.STASIS_TEMPLATES_DIR ?? "/var/lib/stasis/templates";

export interface TestDaemon {
  url: string;
  apiKey: string;
  conn: ConnectionOptions;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  logs: string[];
  /** Stops the daemon process (SIGTERM, or SIGKILL to simulate a crash); sandboxes keep running. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the daemon again on the same data dir (with `extraEnv` for this run only). */
  restart(extraEnv?: NodeJS.ProcessEnv): Promise<void>;
  /** Resolves once the daemon process has exited by itself (a crash hook killed it). */
  exited(): Promise<void>;
  /** Stops the daemon and deletes every sandbox it made. */
  destroy(): Promise<void>;
}

/** The daemon's network tag (config/network-config.ts): names its nftables table and namespaces. */
export function networkTag(dataDir: string): string {
  return createHash("sha256").update(dataDir).digest("hex").slice(0, 6);
}

/** An E2B API key issued by the daemon (POST /v1/e2b/keys), for the unmodified e2b SDKs. */
export async function issueE2bKey(daemon: TestDaemon, name: string): Promise<string> {
  const res = await fetch(`${daemon.url}/v1/e2b/keys`, { method: "POST", headers: { authorization: `Bearer ${daemon.apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ name }) });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`POST /v1/e2b/keys answered ${res.status}: ${text}`);
  return (JSON.parse(text) as { key: string }).key;
}

export async function startTestDaemon(extraEnv: NodeJS.ProcessEnv = {}): Promise<TestDaemon> {
  const tag = randomBytes(4).toString("hex");
  const dataDir = `/var/lib/stasis-test/${tag}`;
  const runDir = `/run/stasis-test/${tag}`;
  mkdirSync(dataDir, { recursive: true });
  const apiKey = `sk_test_${tag}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    STASIS_DATA_DIR: dataDir,
    STASIS_RUN_DIR: runDir,
    STASIS_TEMPLATES_DIR: TEMPLATES_DIR,
    STASIS_API_KEY: apiKey,
    STASIS_PORT: "0",
    STASIS_LOG_LEVEL: "info",
    // Test daemons run side by side on one host: each gets its own sandbox range (a /24 of 10.215-254).
    STASIS_NETWORK_RANGE: `10.${215 + (parseInt(tag.slice(0, 2), 16) % 40)}.${parseInt(tag.slice(2, 4), 16)}.0/24`,
    ...extraEnv,
  };
  const logs: string[] = [];
  let child: ChildProcess | null = null;
  let url = "";

  async function launch(extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
    const proc = spawn(process.execPath, [CLI, "serve"], { env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    url = await new Promise<string>((resolve, reject) => {
      // One that never comes up is killed, not left holding its data folder and mounts after the suite.
      const timer = setTimeout(() => (proc.kill("SIGKILL"), reject(new Error(`daemon did not start:\n${logs.slice(-20).join("\n")}`))), 60_000);
      for (const stream of [proc.stdout!, proc.stderr!]) {
        createInterface({ input: stream }).on("line", (line) => {
          logs.push(line);
          const m = /"url":"(http:[^"]+)"/.exec(line);
          if (m && line.includes("listening")) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
      }
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`daemon exited with ${code}:\n${logs.slice(-20).join("\n")}`));
      });
    });
    daemon.url = url;
    daemon.conn = { apiUrl: url, apiKey };
  }

  async function stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once("exit", () => resolve());
      proc.kill(signal);
    });
    child = null;
  }

  const daemon: TestDaemon = {
    url,
    apiKey,
    conn: { apiUrl: url, apiKey },
    dataDir,
    env,
    logs,
    stop,
    restart: launch,
    exited() {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    },
    async destroy() {
      if (child) {
        const { sandboxes } = await Sandbox.list({ limit: 1000 }, daemon.conn).catch(() => ({ sandboxes: [] }));
        await Promise.all(sandboxes.map((s) => Sandbox.kill(s.id, daemon.conn).catch(() => {})));
      }
      await stop();
      // Never delete through a mount a sandbox left behind: report it instead.
      const leftover = readFileSync("/proc/self/mounts", "utf8").split("\n").filter((l) => l.split(" ")[1]?.startsWith(dataDir));
      if (leftover.length > 0) throw new Error(`mounts left behind under ${dataDir}:\n${leftover.join("\n")}`);
      // Every sandbox was deleted: none of its network namespaces may be left.
      const netTag = networkTag(dataDir);
      const namespaces = existsSync("/var/run/netns") ? readdirSync("/var/run/netns").filter((n) => n.startsWith(`stasis-${netTag}-`)) : [];
      spawnSync("nft", ["delete", "table", "ip", `stasis_${netTag}`]);
      if (namespaces.length > 0) throw new Error(`network namespaces left behind by ${dataDir}: ${namespaces.join(", ")}`);
      const veths = readdirSync("/sys/class/net").filter((n) => n.startsWith(`sx${netTag}`));
      if (veths.length > 0) throw new Error(`veth interfaces left behind by ${dataDir}: ${veths.join(", ")}`);
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(runDir, { recursive: true, force: true });
    },
  };
  await launch();
  return daemon;
}
