import type { DoctorCheck } from "../doctor/doctor.js";
import type { E2bStore } from "../e2b/e2b-store.js";
import type { E2bMetricsHistory } from "../e2b/metrics-history.js";
import type { Metrics } from "../observability/metrics.js";
import type { SecretStore } from "../secrets/secret-store.js";
import type { CodeService } from "../services/code/code-service.js";
import type { ExecService } from "../services/exec-service.js";
import type { FileService } from "../services/file-service.js";
import type { PreviewService } from "../services/preview-service.js";
import type { PtyService } from "../services/pty-service.js";
import type { WatchService } from "../services/watch-service.js";
import type { SandboxService } from "../services/sandbox-service.js";
import type { TemplateService } from "../services/template-service.js";
import type { TemplateStore } from "../templates/template-store.js";

/** What route handlers may use: services only, never the store or drivers directly. */
export interface Services {
  sandboxes: SandboxService;
  exec: ExecService;
  files: FileService;
  /** Terminals: start, input, resize (the WebSocket is http/pty-socket.ts). */
  pty: PtyService;
  /** File watches (inotify in the agent). */
  watch: WatchService;
  templates: TemplateStore;
  /** Template builds, imports, settings and deletes. */
  templateBuilds: TemplateService;
  /** API keys of the E2B-compatible surface. */
  e2bKeys: E2bStore;
  /** Preview URLs of sandboxes' ports: access, signed URLs, listening ports. */
  preview: PreviewService;
  /** Secrets for the egress proxy: names and hosts out, values only in. */
  secrets: SecretStore;
  /** The code interpreter inside sandboxes of the code-interpreter template: runs and contexts. */
  code: CodeService;
  metrics: Metrics;
  /** The last hour of each running sandbox's use, sampled every 5 s (E2B's getMetrics and the console's charts). */
  metricsHistory: E2bMetricsHistory;
  /** The host checks of `stasis doctor` (runtimes, cgroups, networking, disk); concurrent calls share one run. */
  doctor: () => Promise<DoctorCheck[]>;
  version: string;
  defaultRuntime: "gvisor" | "crun";
}
