import { E2bMetricsHistory } from "../../e2b/metrics-history.js";
import { DomainStore } from "../../store/domain-store.js";
import { PtyService } from "../../services/pty-service.js";
import { WatchService } from "../../services/watch-service.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { loadConfig, type DaemonConfig } from "../../config/config.js";
import { E2bStore } from "../../e2b/e2b-store.js";
import { Metrics } from "../../observability/metrics.js";
import { ExecService } from "../../services/exec-service.js";
import { FileService } from "../../services/file-service.js";
import { SandboxService } from "../../services/sandbox-service.js";
import { createTemplateService } from "../../services/template-service.js";
import { SandboxFilesystem } from "../../disks/sandbox-filesystem.js";
import { SecretsKey } from "../../secrets/secret-crypto.js";
import { PreviewService } from "../../services/preview-service.js";
import { CodeService } from "../../services/code/code-service.js";
import { SecretStore } from "../../secrets/secret-store.js";
import { Database } from "../../store/database.js";
import { SandboxStore } from "../../store/sandbox-store.js";
import { TemplateStore } from "../../templates/template-store.js";
import { createApp, type AppOptions } from "../app.js";

export const TEST_API_KEY = "k-0123456789abcdef";

/** For HTTP-layer tests: the daemon's app over real services and a real store, with no runtime. */
export function testApp(options: { log?: Logger; app?: Partial<AppOptions> } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "stasis-app-"));
  const config: DaemonConfig = loadConfig({ STASIS_DATA_DIR: dir, STASIS_API_KEY: TEST_API_KEY });
  const database = new Database(join(dir, "db.sqlite"));
  const store = new SandboxStore(database);
  const metrics = new Metrics();
  const log = options.log ?? pino({ level: "silent" });
  const templates = new TemplateStore(join(dir, "templates"));
  const sandboxes = new SandboxService({ config, store, drivers: new Map(), filesystem: new SandboxFilesystem(join(dir, "sandboxes")), templates, metrics, log });
  const exec = new ExecService(sandboxes, metrics, 1024);
  const preview = new PreviewService(sandboxes, exec, { domain: "localhost", urlTemplate: () => "http://{port}-{id}.localhost:7070" }, new DomainStore(database));
  const services = {
    pty: new PtyService(sandboxes, exec), watch: new WatchService(sandboxes), sandboxes,
    exec,
    code: new CodeService(sandboxes, preview),
    preview: preview,
    files: new FileService(sandboxes, 1024),
    templates,
    templateBuilds: createTemplateService({ config, store: templates, sandboxes, steps: undefined, log }),
    e2bKeys: new E2bStore(database),
    secrets: new SecretStore(database, new SecretsKey(config.secretsKeyFile)),
    metrics,
    metricsHistory: new E2bMetricsHistory(sandboxes),
    doctor: async () => [{ name: "root", ok: true, severity: "error" as const, detail: "running as root" }],
    version: "test",
    defaultRuntime: "gvisor" as const,
  };
  const app = createApp({ apiKey: TEST_API_KEY, log, metrics, services, ...options.app });
  const close = () => {
    database.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { app, dir, config, store, templates, services, metrics, log, close };
}
