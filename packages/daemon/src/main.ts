import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createServer, type IncomingMessage, type Server } from "node:http";
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
import { PreviewService } from "./services/preview-service.js";
import { PtyService } from "./services/pty-service.js";
import { WatchService } from "./services/watch-service.js";
import { PtySocket } from "./http/pty-socket.js";
import { startEgress } from "./start-egress.js";

export interface RunningDaemon {
  url: string;
  log: Logger;
  close(): Promise<void>;
}

/** The composition root: config -> logger -> store -> drivers -> services -> http. */
export async function startDaemon(config: DaemonConfig): Promise<RunningDaemon> {
  const log = createLogger(config.logLevel);
  mkdirSync(config.dataDir, { recursive: true });
  mkdirSync(config.runDir, { recursive: true, mode: 0o700 });
  const database = new Database(join(config.dataDir, "stasis.db"));
  const store = new SandboxStore(database);
  const e2bStore = new E2bStore(database);
  const secrets = new SecretStore(database, new SecretsKey(config.secretsKeyFile));
  const metrics = new Metrics();
  const cgroupMode = detectCgroupMode();
  const drivers = createHostDrivers({ ...config, cgroupMode });
  const stepDriver = [...drivers.values()].find(canRunBuildSteps);
  const templates = new TemplateStore(config.templatesDir);
  // A crashed daemon's build steps first (they hold the staging folders the store then removes).
  const staleSteps = (await stepDriver?.removeStaleSteps()) ?? [];
  if (staleSteps.length > 0) log.info({ containers: staleSteps }, "removed build-step containers left by a stopped daemon");
  await templates.cleanupStale();
  await removeStaleBuildNetworks();
  const filesystem = new SandboxFilesystem(join(config.dataDir, "sandboxes"), { diskPool: config.diskPool, primeSizesMiB: [DEFAULT_RESOURCES.diskMiB], log });
  await filesystem.start();
  const egress = await startEgress(config, secrets, metrics, log);
  const sandboxes = new SandboxService({ config, store, drivers, filesystem, templates, metrics, log, network: egress.networking?.networks ?? null, secrets: egress.secrets, extraCaPem: egress.extraCaPem });
  await sandboxes.start();
  metrics.networkBytesSource = () => sandboxes.networkTotals();
  const exec = new ExecService(sandboxes, metrics, config.maxBufferedOutputBytes);
  const files = new FileService(sandboxes, config.maxUploadBytes);
  const pty = new PtyService(sandboxes, exec);
  const watch = new WatchService(sandboxes);
  const templateBuilds = createTemplateService({ config, store: templates, sandboxes, steps: stepDriver, log: log.child({ component: "templates" }) });
  let listeningPort = config.port;
  const preview = new PreviewService(
    sandboxes,
    exec,
    { domain: config.preview.domain, urlTemplate: () => config.preview.url ?? `http://{port}-{id}.${config.preview.domain}:${listeningPort}` },
    new DomainStore(database),
  );
  const previewProxy = new PreviewProxy(preview, log.child({ component: "preview" }));
  const e2bMetrics = new E2bMetricsHistory(sandboxes);
  e2bMetrics.start();
  const app = createApp({
    apiKey: config.apiKey,
    metricsAuth: config.metricsAuth,
    log,
    metrics,
    services: { sandboxes, exec, files, pty, watch, templates, templateBuilds, e2bKeys: e2bStore, secrets, preview, metrics, version: DAEMON_VERSION, defaultRuntime: config.defaultRuntime },
    e2b: { auth: new E2bAuth(config.apiKey, e2bStore), metricsHistory: e2bMetrics },
  });

  // One listener: a request for a sandbox's port (by host name or E2B's headers) goes to the preview proxy
  // and never reaches the API; everything else is the API's.
  const api = getRequestListener(app.fetch);
  const ptySocket = new PtySocket(config.apiKey, pty, log.child({ component: "pty" }));
  const server: Server = createServer((req, res) => {
    const route = previewProxy.route(req);
    if (route) void previewProxy.handle(req, res, route);
    else void api(req, res);
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const route = previewProxy.route(req);
    if (route) return void previewProxy.upgrade(req, socket, head, route);
    const terminal = ptySocket.route(req);
    if (terminal) void ptySocket.upgrade(req, socket, head, terminal);
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  listeningPort = port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  log.info({ url, cgroups: cgroupMode, version: DAEMON_VERSION }, "stasis daemon listening");

  return {
    url,
    log,
    async close() {
      await new Promise<void>((resolve) => {
        e2bMetrics.stop();
        server.close(() => resolve());
        // Streams in flight would hold close() open; sandboxes keep running and are reattached on restart.
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      if (config.hibernateOnStop) await sandboxes.shutdown();
      else {
        await sandboxes.discardPools();
        sandboxes.stop();
      }
      await filesystem.stop();
      await egress.networking?.close();
      database.close();
      log.info("stasis daemon stopped; hibernated sandboxes wake on their next request, others are reattached on the next start");
    },
  };
}
