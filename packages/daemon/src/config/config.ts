import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { Runtime } from "@stasis/protocol";
import { loadNetworkConfig, type NetworkConfig } from "./network-config.js";
import { loadTlsConfig, type TlsConfig } from "./tls-config.js";

export interface DaemonConfig {
  host: string;
  port: number;
  /** Persistent state: the SQLite store, templates, sandbox disks. */
  dataDir: string;
  /** Built templates; defaults to <dataDir>/templates (tests share one across data dirs). */
  templatesDir: string;
  /** Volatile runtime state (runsc/crun roots): gone after a reboot, like the sandboxes' processes. */
  runDir: string;
  apiKey: string;
  /** The key that encrypts secrets at rest, outside stasis.db (STASIS_SECRETS_KEY_FILE, default <dataDir>/secrets.key; created on first use). */
  secretsKeyFile: string;
  defaultRuntime: Runtime;
  maxSandboxes: number;
  agentPath: string;
  runscPath: string;
  crunPath: string;
  runscPlatform: "systrap" | "ptrace" | null;
  /** Host uid that root inside a crun sandbox maps to. */
  usernsBase: number;
  pidsLimit: number;
  maxUploadBytes: number;
  /** Largest template build context or OCI image archive accepted (STASIS_MAX_BUILD_CONTEXT_BYTES). */
  maxBuildContextBytes: number;
  /** How long one template build step may run (STASIS_BUILD_STEP_TIMEOUT_MS). */
  buildStepTimeoutMs: number;
  /** Upper bound on what /commands/run buffers per stream. */
  maxBufferedOutputBytes: number;
  logLevel: string;
  /** A graceful stop hibernates running sandboxes (gVisor) instead of leaving them running. */
  hibernateOnStop: boolean;
  /** Hibernations at once (on stop and automatic): each checkpoint keeps a core busy. */
  hibernateParallelism: number;
  /**
   * How long a hibernated sandbox keeps its network namespace and rules (0: not at all): a wake within it
   * skips making them (~10-13 ms of a wake); past it they go, and a wake makes them anew.
   */
  hibernatedNetworkKeepMs: number;
  /** Sandbox boots at once; more creates wait their turn (a boot is CPU-bound). */
  createParallelism: number;
  /** Frozen, already booted sandboxes kept per template for instant creates (STASIS_WARM_POOL=base=2). */
  warmPools: Record<string, number>;
  /** Formatted sandbox disks kept ready per disk size, so that a create does not format one (STASIS_DISK_POOL; 0 = off). */
  diskPool: number;
  /** Who may read /metrics without the API key (STASIS_METRICS_AUTH). */
  metricsAuth: MetricsAuth;
  /** Sandboxes' networking (STASIS_NETWORK_*). */
  network: NetworkConfig;
  /** Preview URLs: `<port>-<id>.<domain>` (STASIS_PREVIEW_DOMAIN); `url` overrides the URL the API hands out (STASIS_PREVIEW_URL, with {port} and {id}: behind a reverse proxy). */
  preview: { domain: string; url: string | null };
  /** HTTPS for the API, preview URLs and custom domains, when certificates are given (STASIS_TLS_*); null: HTTP only. */
  tls: TlsConfig | null;
  /** Host names /mcp answers to besides localhost and the listen address (STASIS_MCP_ALLOWED_HOSTS, comma-separated; "*": any). */
  mcpAllowedHosts: string[];
}

/** `loopback`: clients on the host read /metrics without a key, others need it; `key`: everyone needs it; `none`: nobody does. */
export type MetricsAuth = "loopback" | "key" | "none";

function int(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got '${value}'`);
  return n;
}

/** The agent binary: next to the repository's build output unless configured. */
export function defaultAgentPath(): string {
  return new URL("../../../agent/dist/stasis-agent", import.meta.url).pathname;
}

/**
 * Configuration comes from STASIS_* environment variables (flags of `stasis serve` set them). The API key
 * is generated on first start and kept in <dataDir>/api-key (mode 600), so clients on the host can read it.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const dataDir = env.STASIS_DATA_DIR ?? "/var/lib/stasis";
  const runtime = env.STASIS_DEFAULT_RUNTIME ?? "gvisor";
  if (runtime !== "gvisor" && runtime !== "crun") throw new Error(`STASIS_DEFAULT_RUNTIME must be gvisor or crun, got '${runtime}'`);
  const platform = env.STASIS_RUNSC_PLATFORM ?? "";
  if (platform !== "" && platform !== "systrap" && platform !== "ptrace") throw new Error(`STASIS_RUNSC_PLATFORM must be systrap or ptrace`);
  const metricsAuth = env.STASIS_METRICS_AUTH || "loopback";
  if (metricsAuth !== "loopback" && metricsAuth !== "key" && metricsAuth !== "none") throw new Error(`STASIS_METRICS_AUTH must be loopback, key or none, got '${metricsAuth}'`);
  const apiKey = env.STASIS_API_KEY ?? loadOrCreateApiKey(dataDir);
  if (apiKey.length < 16) throw new Error("the API key must be at least 16 characters (STASIS_API_KEY or <data dir>/api-key)");
  return {
    host: env.STASIS_HOST ?? "127.0.0.1",
    port: int(env.STASIS_PORT, 7070, "STASIS_PORT"),
    dataDir,
    templatesDir: env.STASIS_TEMPLATES_DIR ?? join(dataDir, "templates"),
    runDir: env.STASIS_RUN_DIR ?? "/run/stasis",
    apiKey,
    secretsKeyFile: env.STASIS_SECRETS_KEY_FILE || join(dataDir, "secrets.key"),
    defaultRuntime: runtime,
    maxSandboxes: int(env.STASIS_MAX_SANDBOXES, 200, "STASIS_MAX_SANDBOXES"),
    agentPath: env.STASIS_AGENT_PATH ?? defaultAgentPath(),
    runscPath: env.STASIS_RUNSC ?? "runsc",
    crunPath: env.STASIS_CRUN ?? "crun",
    runscPlatform: platform === "" ? null : platform,
    usernsBase: int(env.STASIS_USERNS_BASE, 1_000_000, "STASIS_USERNS_BASE"),
    pidsLimit: int(env.STASIS_PIDS_LIMIT, 512, "STASIS_PIDS_LIMIT"),
    maxUploadBytes: int(env.STASIS_MAX_UPLOAD_BYTES, 1024 * 1024 * 1024, "STASIS_MAX_UPLOAD_BYTES"),
    maxBuildContextBytes: int(env.STASIS_MAX_BUILD_CONTEXT_BYTES, 4 * 1024 * 1024 * 1024, "STASIS_MAX_BUILD_CONTEXT_BYTES"),
    buildStepTimeoutMs: int(env.STASIS_BUILD_STEP_TIMEOUT_MS, 30 * 60_000, "STASIS_BUILD_STEP_TIMEOUT_MS"),
    maxBufferedOutputBytes: int(env.STASIS_MAX_BUFFERED_OUTPUT_BYTES, 16 * 1024 * 1024, "STASIS_MAX_BUFFERED_OUTPUT_BYTES"),
    logLevel: env.STASIS_LOG_LEVEL ?? "info",
    hibernateOnStop: (env.STASIS_HIBERNATE_ON_STOP ?? "1") !== "0",
    hibernateParallelism: Math.max(1, int(env.STASIS_HIBERNATE_PARALLELISM, Math.min(4, availableParallelism()), "STASIS_HIBERNATE_PARALLELISM")),
    hibernatedNetworkKeepMs: int(env.STASIS_HIBERNATED_NETWORK_KEEP_MS, 10 * 60_000, "STASIS_HIBERNATED_NETWORK_KEEP_MS"),
    warmPools: parseWarmPools(env.STASIS_WARM_POOL ?? ""),
    diskPool: parseDiskPool(env.STASIS_DISK_POOL),
    metricsAuth,
    network: loadNetworkConfig(env, dataDir),
    preview: previewConfig(env),
    tls: loadTlsConfig(env),
    mcpAllowedHosts: parseMcpAllowedHosts(env.STASIS_MCP_ALLOWED_HOSTS ?? ""),
    createParallelism: Math.max(1, int(env.STASIS_CREATE_PARALLELISM, Math.max(2, 2 * availableParallelism()), "STASIS_CREATE_PARALLELISM")),
  };
}

/** `a.example, [fd00::1]` → host names as HostCheck compares them (no port, lower case); `*`: any. */
export function parseMcpAllowedHosts(value: string): string[] {
  const hosts = value.split(",").map((h) => h.trim().toLowerCase()).filter(Boolean);
  for (const host of hosts) {
    if (host !== "*" && !/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)$/.test(host)) throw new Error(`STASIS_MCP_ALLOWED_HOSTS takes host names without scheme or port (IPv6 in brackets), comma-separated, or *; got '${host}'`);
  }
  return hosts;
}

/** Disks kept ready per size: a few cover a burst; each is a mounted loop device, so the count is bounded. */
export function parseDiskPool(value: string | undefined): number {
  const n = int(value, 2, "STASIS_DISK_POOL");
  if (n > 16) throw new Error(`STASIS_DISK_POOL must be at most 16, got '${value}'`);
  return n;
}

/** `base=2,python=1` → { base: 2, python: 1 }. */
export function parseWarmPools(value: string): Record<string, number> {
  // No prototype: a template may be called "constructor".
  const pools: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const item of value.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z0-9][a-z0-9._-]{0,62})=(\d{1,3})$/.exec(item);
    if (!m) throw new Error(`STASIS_WARM_POOL entries are template=size (e.g. base=2), got '${item}'`);
    if (Number(m[2]) > 0) pools[m[1]!] = Number(m[2]);
  }
  return pools;
}

export function apiKeyPath(dataDir: string): string {
  return join(dataDir, "api-key");
}

function loadOrCreateApiKey(dataDir: string): string {
  const path = apiKeyPath(dataDir);
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  mkdirSync(dataDir, { recursive: true, mode: 0o711 });
  const key = `sk_stasis_${randomBytes(24).toString("hex")}`;
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  return key;
}

function previewConfig(env: NodeJS.ProcessEnv): DaemonConfig["preview"] {
  const domain = (env.STASIS_PREVIEW_DOMAIN ?? "localhost").toLowerCase();
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(domain)) throw new Error(`STASIS_PREVIEW_DOMAIN must be a domain name, got '${domain}'`);
  const url = env.STASIS_PREVIEW_URL || null;
  if (url !== null && (!/^https?:\/\//.test(url) || !url.includes("{port}") || !url.includes("{id}"))) throw new Error("STASIS_PREVIEW_URL must be an http(s) URL with {port} and {id}, e.g. https://{port}-{id}.preview.example.com");
  return { domain, url };
}
