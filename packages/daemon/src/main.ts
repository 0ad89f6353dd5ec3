import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import type { Logger } from "pino";
import type { DaemonConfig } from "./config/config.js";
import { E2bAuth } from "./e2b/e2b-auth.js";
import { E2bStore } from "./e2b/e2b-store.js";
import { SecretsKey } from "./secrets/secret-crypto.js";
import { SecretStore } from "./secrets/secret-store.js";
import { E2bMetricsHistory } from "./e2b/metrics-history.js";
import { createApp } from "./http/app.js";
import { createLogger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";
import { tracedRequests } from "./observability/http-tracing.js";
import { startTracing } from "./observability/tracing-setup.js";
import { StartupPhases } from "./observability/startup-phases.js";
import { detectCgroupMode } from "./runtime/cgroups.js";
import { canRunBuildSteps } from "./runtime/driver.js";
import { createHostDrivers } from "./runtime/drivers/create-drivers.js";
import { ExecService } from "./services/exec-service.js";
import { FileService } from "./services/file-service.js";
import { SandboxService } from "./services/sandbox-service.js";
import { SandboxFilesystem } from "./disks/sandbox-filesystem.js";
import { Database } from "./store/database.js";
import { SandboxStore } from "./store/sandbox-store.js";
import { DomainStore } from "./store/domain-store.js";
import { DEFAULT_RESOURCES, TemplateStore } from "./templates/template-store.js";
import { createTemplateService } from "./services/template-service.js";
import { removeStaleBuildNetworks } from "./templates/build-network.js";
import { DAEMON_VERSION } from "./version.js";
import { PreviewProxy } from "./http/preview-proxy.js";
import { startListeners, type DaemonListeners } from "./http/listeners.js";
import { forwardRouteOf, PortForward } from "./http/port-forward.js";
import { isMcpRequest, McpEndpoint } from "./http/mcp-endpoint.js";
import { PreviewService } from "./services/preview-service.js";
import { InboundConnections } from "./services/lifecycle/inbound-connections.js";
import { CodeService } from "./services/code/code-service.js";
import { PtyService } from "./services/pty-service.js";
import { WatchService } from "./services/watch-service.js";
import { PtySocket } from "./http/pty-socket.js";
import { startEgress } from "./start-egress.js";
import { lockDataDir } from "./config/data-dir-lock.js";
import { runDoctor } from "./doctor/doctor.js";
import { sharedRun } from "./services/shared-run.js";

export interface RunningDaemon {
  url: string;
  log: Logger;
  close(): Promise<void>;
}

/**
 * The composition root: config -> logger -> store -> drivers -> services -> http. A start that fails
 * half-way (its port taken, say) stops what it had started (disk pool, network daemon, store, data-folder
 * lock) before it throws, so the process can exit and the next start finds nothing held.
 */
export async function startDaemon(config: DaemonConfig): Promise<RunningDaemon> {
  const started = new StartedParts();
  try {
    return await composeDaemon(config, started);
  } catch (err) {
    await started.stopAll();
    throw err;
  }
}

async function composeDaemon(config: DaemonConfig, started: StartedParts): Promise<RunningDaemon> {
  // Before anything that may start a span; a no-op unless an OTLP endpoint is configured.
  const startup = new StartupPhases();
  const tracing = await startTracing();
  const log = createLogger(config.logLevel);
  if (tracing.enabled) log.info({ endpoint: process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_ENDPOINT }, "OpenTelemetry tracing on");
  mkdirSync(config.dataDir, { recursive: true });
  mkdirSync(config.runDir, { recursive: true, mode: 0o700 });
  const lock = lockDataDir(config.dataDir);
  started.add(() => lock.release());
  const database = new Database(join(config.dataDir, "stasis.db"));
  started.add(() => database.close());
  const store = new SandboxStore(database);
  const e2bStore = new E2bStore(database);
  const secrets = new SecretStore(database, new SecretsKey(config.secretsKeyFile));
  const metrics = new Metrics();
  const cgroupMode = detectCgroupMode();
  const drivers = createHostDrivers({ ...config, cgroupMode });
  const stepDriver = [...drivers.values()].find(canRunBuildSteps);
  const templates = new TemplateStore(config.templatesDir);
  startup.mark("store");
  // A crashed daemon's build steps first (they hold the staging folders the store then removes).
  const staleSteps = (await stepDriver?.removeStaleSteps()) ?? [];
  if (staleSteps.length > 0) log.info({ containers: staleSteps }, "removed build-step containers left by a stopped daemon");
  await templates.cleanupStale();
  await removeStaleBuildNetworks();
  startup.mark("staleBuilds");
  const filesystem = new SandboxFilesystem(join(config.dataDir, "sandboxes"), { diskPool: config.diskPool, primeSizesMiB: [DEFAULT_RESOURCES.diskMiB], log });
  started.add(() => filesystem.stop());
  await filesystem.start();
  startup.mark("filesystem");
  const egress = await startEgress(config, secrets, metrics, log);
  started.add(() => egress.networking?.close());
  startup.mark("network");
  const inbound = new InboundConnections();
  const sandboxes = new SandboxService({ config, store, drivers, filesystem, templates, metrics, log, network: egress.networking?.networks ?? null, secrets: egress.secrets, extraCaPem: egress.extraCaPem, inbound });
  started.add(async () => {
    await sandboxes.discardPools();
    sandboxes.stop();
  });
  await sandboxes.start();
  startup.mark("sandboxes");
  metrics.networkBytesSource = () => sandboxes.networkTotals();
  const exec = new ExecService(sandboxes, metrics, config.maxBufferedOutputBytes);
  const files = new FileService(sandboxes, config.maxUploadBytes);
  const pty = new PtyService(sandboxes, exec);
  const watch = new WatchService(sandboxes);
  const templateBuilds = createTemplateService({ config, store: templates, sandboxes, steps: stepDriver, log: log.child({ component: "templates" }) });
  let listeners: DaemonListeners | null = null;
  const preview = new PreviewService(sandboxes, exec, { domain: config.preview.domain, urlTemplate: () => config.preview.url ?? defaultPreviewUrl(config, listeners) }, new DomainStore(database), inbound);
  const previewProxy = new PreviewProxy(preview, log.child({ component: "preview" }));
  const portForward = new PortForward(preview, config.apiKey, log.child({ component: "port-forward" }));
  const e2bMetrics = new E2bMetricsHistory(sandboxes);
  e2bMetrics.start();
  started.add(() => e2bMetrics.stop());
  const app = createApp({
    apiKey: config.apiKey,
    metricsAuth: config.metricsAuth,
    log,
    metrics,
    services: { sandboxes, exec, files, pty, watch, templates, templateBuilds, e2bKeys: e2bStore, secrets, preview, code: new CodeService(sandboxes, preview), metrics, metricsHistory: e2bMetrics, doctor: sharedRun(() => runDoctor(config)), version: DAEMON_VERSION, defaultRuntime: config.defaultRuntime },
    e2b: { auth: new E2bAuth(config.apiKey, e2bStore), metricsHistory: e2bMetrics },
  });

  const mcp = new McpEndpoint({ apiKey: config.apiKey, listenHost: config.host, port: () => listeners?.port ?? config.port, extraHosts: config.mcpAllowedHosts, log: log.child({ component: "mcp" }) });

  // A request for a sandbox's port (by host name or E2B's headers) goes to the preview proxy and never
  // reaches the API; /mcp is the MCP endpoint's; everything else is the API's. HTTPS, when configured, serves the same.
  // Traced only when tracing is on: otherwise not even the wrapper runs.
  const api = tracing.enabled ? tracedRequests(getRequestListener(app.fetch)) : getRequestListener(app.fetch);
  const ptySocket = new PtySocket(config.apiKey, pty, log.child({ component: "pty" }));
  listeners = await startListeners({
    host: config.host,
    port: config.port,
    tls: config.tls,
    log,
    onRequest: (req, res) => {
      const route = previewProxy.route(req);
      if (route) void previewProxy.handle(req, res, route);
      else if (isMcpRequest(req.url)) void mcp.handle(req, res);
      else void api(req, res);
    },
    onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const route = previewProxy.route(req);
      if (route) return void previewProxy.upgrade(req, socket, head, route);
      const terminal = ptySocket.route(req);
      if (terminal) return void ptySocket.upgrade(req, socket, head, terminal);
      const forward = forwardRouteOf(req.url);
      if (forward) void portForward.handle(req, socket, head, forward);
      else socket.destroy();
    },
  });
  const url = `http://${hostInUrl(config.host)}:${listeners.port}`;
  const httpsUrl = listeners.httpsPort === null ? undefined : `https://${hostInUrl(config.host)}:${listeners.httpsPort}`;
  startup.mark("listen");
  log.info({ url, httpsUrl, cgroups: cgroupMode, version: DAEMON_VERSION, ...startup.summary() }, "stasis daemon listening");
  const opened = listeners;

  return {
    url,
    log,
    async close() {
      e2bMetrics.stop();
      await mcp.close();
      await opened.close();
      if (config.hibernateOnStop) await sandboxes.shutdown();
      else {
        await sandboxes.discardPools();
        sandboxes.stop();
      }
      await filesystem.stop();
      await egress.networking?.close();
      database.close();
      lock.release();
      // The spans of the shutdown's hibernations too.
      await tracing.shutdown().catch((err: Error) => log.warn({ err: err.message }, "flushing the last spans failed"));
      log.info("stasis daemon stopped; hibernated sandboxes wake on their next request, others are reattached on the next start");
    },
  };
}

/** What a start has started so far, stopped in reverse order if a later step fails. */
class StartedParts {
  private readonly stops: (() => unknown)[] = [];

  add(stop: () => unknown): void {
    this.stops.push(stop);
  }

  async stopAll(): Promise<void> {
    // Best effort: the start's own error is the one to report.
    for (const stop of this.stops.reverse()) await Promise.resolve().then(stop).catch(() => {});
  }
}

function hostInUrl(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * Preview URLs on the daemon's own listener: HTTPS when a certificate covers the preview host names
 * (`*.<domain>`), else HTTP. Behind a reverse proxy, STASIS_PREVIEW_URL says what the outside sees.
 */
function defaultPreviewUrl(config: DaemonConfig, listeners: DaemonListeners | null): string {
  const domain = config.preview.domain;
  const https = listeners?.httpsPort != null && listeners.certificates?.covered(`1-sbx.${domain}`) === true;
  const port = https ? listeners!.httpsPort! : (listeners?.port ?? config.port);
  const standard = port === (https ? 443 : 80);
  return `${https ? "https" : "http"}://{port}-{id}.${domain}${standard ? "" : `:${port}`}`;
}
