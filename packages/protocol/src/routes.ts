import { z } from "zod";
import type { ErrorCode } from "./errors.js";
import {
  AttachQuerySchema,
  CommandEventSchema,
  CommandRequestSchema,
  CommandResultSchema,
  ProcessListSchema,
  ProcessSchema,
  SignalRequestSchema,
  StartedProcessSchema,
  StdinRequestSchema,
} from "./commands.js";
import {
  FileInfoSchema,
  FileListSchema,
  ListQuerySchema,
  MkdirRequestSchema,
  MkdirResultSchema,
  MoveRequestSchema,
  PathQuerySchema,
  RemoveQuerySchema,
  WriteQuerySchema,
} from "./files.js";
import {
  CreateSandboxRequestSchema,
  ForkRequestSchema,
  ForkResultSchema,
  ListSandboxesQuerySchema,
  SandboxListSchema,
  SandboxMetricsSchema,
  SandboxMetricsHistorySchema,
  SandboxSchema,
  SetNetworkRequestSchema,
  SetTimeoutRequestSchema,
  StandbyPolicySchema,
} from "./sandboxes.js";
import { CodeContextListSchema, CodeContextSchema, CodeEventSchema, CreateCodeContextRequestSchema, RunCodeRequestSchema } from "./code.js";
import { CreatedE2bKeySchema, CreateE2bKeyRequestSchema, E2bKeyListSchema } from "./e2b-keys.js";
import { CreateSecretRequestSchema, SecretListSchema, SecretSchema } from "./network.js";
import { CreatedPtySchema, CreatePtyRequestSchema, PtyConnectQuerySchema, PtySizeSchema } from "./pty.js";
import { WatchEventSchema, WatchQuerySchema } from "./watch.js";
import { DaemonInfoSchema, DoctorReportSchema, HealthSchema } from "./system.js";
import { CreateDomainRequestSchema, DomainListSchema, DomainSchema, PortListSchema, PreviewSchema, SetPreviewRequestSchema, SignedPreviewUrlSchema, SignPreviewUrlRequestSchema } from "./preview.js";
import {
  BuildTemplateQuerySchema,
  ImportTemplateQuerySchema,
  TemplateBuildEventSchema,
  TemplateListSchema,
  TemplateSchema,
  UpdateTemplateRequestSchema,
} from "./templates.js";

export type RouteBody = { kind: "json"; schema: z.ZodType } | { kind: "raw" };
export type RouteResponse =
  | { kind: "json"; status: 200 | 201; schema: z.ZodType }
  | { kind: "ndjson"; schema: z.ZodType }
  | { kind: "raw" }
  | { kind: "empty" }
  | { kind: "text" };

export interface RouteSpec {
  method: "get" | "post" | "put" | "delete";
  /** OpenAPI-style path, e.g. /v1/sandboxes/{id}. */
  path: string;
  summary: string;
  tag: string;
  auth: boolean;
  query?: z.ZodType;
  body?: RouteBody;
  response: RouteResponse;
  errors: ErrorCode[];
}

const sandboxErrors: ErrorCode[] = ["sandbox_not_found", "sandbox_not_running", "sandbox_failed", "agent_timeout"];
const codeErrors: ErrorCode[] = [...sandboxErrors, "network_unavailable", "code_interpreter_unavailable", "code_interpreter_failed"];
const fileErrors: ErrorCode[] = [...sandboxErrors, "file_not_found", "permission_denied", "not_a_directory", "is_a_directory", "name_too_long", "symlink_loop"];

/** Every route of the API. The daemon mounts exactly these; the OpenAPI document is generated from them. */
export const routes = {
  health: { method: "get", path: "/healthz", summary: "Liveness probe", tag: "system", auth: false, response: { kind: "json", status: 200, schema: HealthSchema }, errors: [] },
  metrics: { method: "get", path: "/metrics", summary: "Prometheus metrics; without a key only from loopback by default (STASIS_METRICS_AUTH), else send the API key", tag: "system", auth: false, response: { kind: "text" }, errors: [] },
  openapi: { method: "get", path: "/v1/openapi.json", summary: "This OpenAPI document", tag: "system", auth: false, response: { kind: "json", status: 200, schema: z.record(z.string(), z.unknown()) }, errors: [] },
  info: { method: "get", path: "/v1/info", summary: "Daemon version, runtimes, templates and capacity", tag: "system", auth: true, response: { kind: "json", status: 200, schema: DaemonInfoSchema }, errors: [] },
  doctor: { method: "get", path: "/v1/doctor", summary: "Run the host checks of `stasis doctor` (runtimes, cgroups, networking, disk) and return them", tag: "system", auth: true, response: { kind: "json", status: 200, schema: DoctorReportSchema }, errors: [] },

  createSandbox: { method: "post", path: "/v1/sandboxes", summary: "Create a sandbox and wait until it is ready", tag: "sandboxes", auth: true, body: { kind: "json", schema: CreateSandboxRequestSchema }, response: { kind: "json", status: 201, schema: SandboxSchema }, errors: ["template_not_found", "runtime_unavailable", "capacity_exceeded", "sandbox_failed", "insufficient_storage"] },
  listSandboxes: { method: "get", path: "/v1/sandboxes", summary: "List sandboxes, newest first, filtered and paginated", tag: "sandboxes", auth: true, query: ListSandboxesQuerySchema, response: { kind: "json", status: 200, schema: SandboxListSchema }, errors: [] },
  getSandbox: { method: "get", path: "/v1/sandboxes/{id}", summary: "Get a sandbox", tag: "sandboxes", auth: true, response: { kind: "json", status: 200, schema: SandboxSchema }, errors: ["sandbox_not_found"] },
  deleteSandbox: { method: "delete", path: "/v1/sandboxes/{id}", summary: "Kill the sandbox and delete it with its files", tag: "sandboxes", auth: true, response: { kind: "empty" }, errors: ["sandbox_not_found"] },
  setSandboxTimeout: { method: "post", path: "/v1/sandboxes/{id}/timeout", summary: "Set the sandbox to expire timeoutMs from now", tag: "sandboxes", auth: true, body: { kind: "json", schema: SetTimeoutRequestSchema }, response: { kind: "json", status: 200, schema: SandboxSchema }, errors: ["sandbox_not_found", "sandbox_not_running"] },

  pauseSandbox: { method: "post", path: "/v1/sandboxes/{id}/pause", summary: "Freeze the sandbox in RAM: no CPU, memory and processes kept; any later request wakes it", tag: "sandboxes", auth: true, response: { kind: "json", status: 200, schema: SandboxSchema }, errors: ["sandbox_not_found", "sandbox_not_running"] },
  hibernateSandbox: { method: "post", path: "/v1/sandboxes/{id}/hibernate", summary: "Checkpoint the sandbox to disk: no CPU, no memory; memory, processes and files come back on the next request", tag: "sandboxes", auth: true, response: { kind: "json", status: 200, schema: SandboxSchema }, errors: ["sandbox_not_found", "sandbox_not_running", "sandbox_failed", "not_supported_by_runtime"] },
  resumeSandbox: { method: "post", path: "/v1/sandboxes/{id}/resume", summary: "Wake a paused or hibernated sandbox (requests also do this on their own)", tag: "sandboxes", auth: true, response: { kind: "json", status: 200, schema: SandboxSchema }, errors: ["sandbox_not_found", "sandbox_not_running", "sandbox_failed"] },
  forkSandbox: { method: "post", path: "/v1/sandboxes/{id}/fork", summary: "Make count independent sandboxes from this one's current memory, processes and files; the source goes on unchanged", tag: "sandboxes", auth: true, body: { kind: "json", schema: ForkRequestSchema }, response: { kind: "json", status: 201, schema: ForkResultSchema }, errors: ["sandbox_not_found", "sandbox_not_running", "sandbox_failed", "capacity_exceeded", "not_supported_by_runtime"] },
  setStandbyPolicy: { method: "post", path: "/v1/sandboxes/{id}/standby", summary: "Change when the sandbox pauses and hibernates on its own, and what its lifetime's end does", tag: "sandboxes", auth: true, body: { kind: "json", schema: StandbyPolicySchema }, response: { kind: "json", status: 200, schema: SandboxSchema }, errors: ["sandbox_not_found"] },

  getSandboxMetrics: { method: "get", path: "/v1/sandboxes/{id}/metrics", summary: "What the sandbox uses now: CPU, memory, disk, network bytes (does not wake it)", tag: "sandboxes", auth: true, response: { kind: "json", status: 200, schema: SandboxMetricsSchema }, errors: ["sandbox_not_found"] },
  getSandboxMetricsHistory: { method: "get", path: "/v1/sandboxes/{id}/metrics/history", summary: "CPU, memory and network samples of the last hour (every 5 s while running), for charts without Prometheus", tag: "sandboxes", auth: true, response: { kind: "json", status: 200, schema: SandboxMetricsHistorySchema }, errors: ["sandbox_not_found"] },
  listPorts: { method: "get", path: "/v1/sandboxes/{id}/ports", summary: "TCP ports a process listens on in the sandbox, each with its preview URL", tag: "preview", auth: true, response: { kind: "json", status: 200, schema: PortListSchema }, errors: [...sandboxErrors, "network_unavailable"] },
  getPreview: { method: "get", path: "/v1/sandboxes/{id}/preview", summary: "The sandbox's preview settings: public or not, its access token, the URL of a port", tag: "preview", auth: true, response: { kind: "json", status: 200, schema: PreviewSchema }, errors: ["sandbox_not_found", "network_unavailable"] },
  setPreview: { method: "put", path: "/v1/sandboxes/{id}/preview", summary: "Make the sandbox's ports public or private, or rotate its access token", tag: "preview", auth: true, body: { kind: "json", schema: SetPreviewRequestSchema }, response: { kind: "json", status: 200, schema: PreviewSchema }, errors: ["sandbox_not_found", "network_unavailable"] },
  signPreviewUrl: { method: "post", path: "/v1/sandboxes/{id}/preview/sign", summary: "A signed, expiring URL that opens one port of a private sandbox in a browser", tag: "preview", auth: true, body: { kind: "json", schema: SignPreviewUrlRequestSchema }, response: { kind: "json", status: 200, schema: SignedPreviewUrlSchema }, errors: ["sandbox_not_found", "network_unavailable"] },
  createDomain: { method: "post", path: "/v1/domains", summary: "Serve a sandbox's port at a host name of your own (replaces that host's mapping)", tag: "preview", auth: true, body: { kind: "json", schema: CreateDomainRequestSchema }, response: { kind: "json", status: 201, schema: DomainSchema }, errors: ["invalid_request", "sandbox_not_found", "network_unavailable"] },
  listDomains: { method: "get", path: "/v1/domains", summary: "List custom domains", tag: "preview", auth: true, response: { kind: "json", status: 200, schema: DomainListSchema }, errors: [] },
  deleteDomain: { method: "delete", path: "/v1/domains/{host}", summary: "Stop serving a custom domain", tag: "preview", auth: true, response: { kind: "empty" }, errors: ["domain_not_found"] },
  setSandboxNetwork: { method: "put", path: "/v1/sandboxes/{id}/network", summary: "Change what the sandbox may reach (internet, allowOut, denyOut); new connections follow at once", tag: "sandboxes", auth: true, body: { kind: "json", schema: SetNetworkRequestSchema }, response: { kind: "json", status: 200, schema: SandboxSchema }, errors: ["sandbox_not_found", "network_unavailable"] },
  runCommand: { method: "post", path: "/v1/sandboxes/{id}/commands/run", summary: "Run a command to completion and return its buffered output", tag: "commands", auth: true, body: { kind: "json", schema: CommandRequestSchema }, response: { kind: "json", status: 200, schema: CommandResultSchema }, errors: [...sandboxErrors, "exec_failed"] },
  streamCommand: { method: "post", path: "/v1/sandboxes/{id}/commands/stream", summary: "Run a command, streaming NDJSON events until its exit; closing the stream kills it", tag: "commands", auth: true, body: { kind: "json", schema: CommandRequestSchema }, response: { kind: "ndjson", schema: CommandEventSchema }, errors: [...sandboxErrors, "exec_failed"] },
  startProcess: { method: "post", path: "/v1/sandboxes/{id}/processes", summary: "Start a background process", tag: "processes", auth: true, body: { kind: "json", schema: CommandRequestSchema }, response: { kind: "json", status: 201, schema: StartedProcessSchema }, errors: [...sandboxErrors, "exec_failed"] },
  listProcesses: { method: "get", path: "/v1/sandboxes/{id}/processes", summary: "List processes started through the API, running and recently exited", tag: "processes", auth: true, response: { kind: "json", status: 200, schema: ProcessListSchema }, errors: [...sandboxErrors, "reply_too_large"] },
  getProcess: { method: "get", path: "/v1/sandboxes/{id}/processes/{pid}", summary: "Get one process", tag: "processes", auth: true, response: { kind: "json", status: 200, schema: ProcessSchema }, errors: [...sandboxErrors, "process_not_found"] },
  attachProcess: { method: "get", path: "/v1/sandboxes/{id}/processes/{pid}/stream", summary: "Attach to a process: recent output (replay), then live output until it exits", tag: "processes", auth: true, query: AttachQuerySchema, response: { kind: "ndjson", schema: CommandEventSchema }, errors: [...sandboxErrors, "process_not_found"] },
  writeStdin: { method: "post", path: "/v1/sandboxes/{id}/processes/{pid}/stdin", summary: "Write to a process's stdin", tag: "processes", auth: true, body: { kind: "json", schema: StdinRequestSchema }, response: { kind: "empty" }, errors: [...sandboxErrors, "process_not_found", "stdin_closed"] },
  signalProcess: { method: "post", path: "/v1/sandboxes/{id}/processes/{pid}/signal", summary: "Send a signal to a process's group", tag: "processes", auth: true, body: { kind: "json", schema: SignalRequestSchema }, response: { kind: "empty" }, errors: [...sandboxErrors, "process_not_found"] },
  killProcess: { method: "delete", path: "/v1/sandboxes/{id}/processes/{pid}", summary: "Kill a process's group (SIGKILL)", tag: "processes", auth: true, response: { kind: "empty" }, errors: [...sandboxErrors, "process_not_found"] },

  runCode: { method: "post", path: "/v1/sandboxes/{id}/code/run", summary: "Run code in a context of the sandbox's code interpreter (code-interpreter template), streaming NDJSON: output, results (text, HTML, PNG, DataFrames as data), the exception, then the execution count", tag: "code", auth: true, body: { kind: "json", schema: RunCodeRequestSchema }, response: { kind: "ndjson", schema: CodeEventSchema }, errors: [...codeErrors, "invalid_request", "context_not_found"] },
  listCodeContexts: { method: "get", path: "/v1/sandboxes/{id}/code/contexts", summary: "List the code interpreter's contexts (the languages' defaults included)", tag: "code", auth: true, response: { kind: "json", status: 200, schema: CodeContextListSchema }, errors: codeErrors },
  createCodeContext: { method: "post", path: "/v1/sandboxes/{id}/code/contexts", summary: "Start a code context: a kernel of its own that keeps variables, imports and the working directory", tag: "code", auth: true, body: { kind: "json", schema: CreateCodeContextRequestSchema }, response: { kind: "json", status: 201, schema: CodeContextSchema }, errors: [...codeErrors, "invalid_request"] },
  deleteCodeContext: { method: "delete", path: "/v1/sandboxes/{id}/code/contexts/{contextId}", summary: "Stop a code context and its kernel", tag: "code", auth: true, response: { kind: "empty" }, errors: [...codeErrors, "context_not_found"] },
  restartCodeContext: { method: "post", path: "/v1/sandboxes/{id}/code/contexts/{contextId}/restart", summary: "Restart a context's kernel: its variables are gone, its id and working directory stay", tag: "code", auth: true, response: { kind: "empty" }, errors: [...codeErrors, "context_not_found"] },
  interruptCodeContext: { method: "post", path: "/v1/sandboxes/{id}/code/contexts/{contextId}/interrupt", summary: "Interrupt the context's running code (KeyboardInterrupt in Python); its state stays", tag: "code", auth: true, response: { kind: "empty" }, errors: [...codeErrors, "context_not_found"] },

  readFile: { method: "get", path: "/v1/sandboxes/{id}/files", summary: "Read a file: raw bytes", tag: "files", auth: true, query: PathQuerySchema, response: { kind: "raw" }, errors: [...fileErrors, "not_a_regular_file"] },
  writeFile: { method: "put", path: "/v1/sandboxes/{id}/files", summary: "Write a file from a raw body, atomically, creating parent directories", tag: "files", auth: true, query: WriteQuerySchema, body: { kind: "raw" }, response: { kind: "json", status: 200, schema: FileInfoSchema }, errors: [...fileErrors, "payload_too_large", "insufficient_storage", "file_busy"] },
  removeFile: { method: "delete", path: "/v1/sandboxes/{id}/files", summary: "Remove a file or directory", tag: "files", auth: true, query: RemoveQuerySchema, response: { kind: "empty" }, errors: [...fileErrors, "directory_not_empty", "file_busy"] },
  statFile: { method: "get", path: "/v1/sandboxes/{id}/files/stat", summary: "Stat a path (does not follow a final symlink)", tag: "files", auth: true, query: PathQuerySchema, response: { kind: "json", status: 200, schema: FileInfoSchema }, errors: fileErrors },
  listFiles: { method: "get", path: "/v1/sandboxes/{id}/files/list", summary: "List a directory to a depth", tag: "files", auth: true, query: ListQuerySchema, response: { kind: "json", status: 200, schema: FileListSchema }, errors: [...fileErrors, "reply_too_large"] },
  makeDir: { method: "post", path: "/v1/sandboxes/{id}/files/mkdir", summary: "Create a directory and its parents", tag: "files", auth: true, body: { kind: "json", schema: MkdirRequestSchema }, response: { kind: "json", status: 200, schema: MkdirResultSchema }, errors: [...fileErrors, "file_exists", "insufficient_storage"] },
  watchFiles: { method: "get", path: "/v1/sandboxes/{id}/files/watch", summary: "Watch a directory (recursive: and below): create, write, remove, rename and chmod events as NDJSON until the client leaves; a `dropped` event counts changes lost to a slow reader", tag: "files", auth: true, query: WatchQuerySchema, response: { kind: "ndjson", schema: WatchEventSchema }, errors: [...fileErrors, "agent_outdated", "payload_too_large"] },
  moveFile: { method: "post", path: "/v1/sandboxes/{id}/files/move", summary: "Move (rename) a path", tag: "files", auth: true, body: { kind: "json", schema: MoveRequestSchema }, response: { kind: "json", status: 200, schema: FileInfoSchema }, errors: [...fileErrors, "cross_device", "file_busy"] },

  createPty: { method: "post", path: "/v1/sandboxes/{id}/pty", summary: "Start a terminal (a process on a pseudo-terminal, TERM=xterm-256color) without attaching; attach with the WebSocket at GET .../pty?pid=", tag: "terminals", auth: true, body: { kind: "json", schema: CreatePtyRequestSchema }, response: { kind: "json", status: 201, schema: CreatedPtySchema }, errors: [...sandboxErrors, "exec_failed", "agent_outdated"] },
  connectPty: { method: "get", path: "/v1/sandboxes/{id}/pty", summary: "WebSocket (send Upgrade): a new terminal, or ?pid= to re-attach with recent output replayed. Binary frames are terminal bytes both ways; text frames are JSON control messages ({type: resize, cols, rows} in; started, exit, error out). Key by header, subprotocol `stasis.key.<key>` or ?access_token=", tag: "terminals", auth: true, query: PtyConnectQuerySchema, response: { kind: "empty" }, errors: [...sandboxErrors, "process_not_found", "agent_outdated", "invalid_request"] },
  ptyInput: { method: "post", path: "/v1/sandboxes/{id}/pty/{pid}/input", summary: "Send bytes (the raw body, at most 1 MiB) to a terminal as keystrokes", tag: "terminals", auth: true, body: { kind: "raw" }, response: { kind: "empty" }, errors: [...sandboxErrors, "process_not_found", "stdin_closed", "payload_too_large"] },
  resizePty: { method: "post", path: "/v1/sandboxes/{id}/pty/{pid}/resize", summary: "Set a terminal's size (its programs get SIGWINCH)", tag: "terminals", auth: true, body: { kind: "json", schema: PtySizeSchema }, response: { kind: "empty" }, errors: [...sandboxErrors, "process_not_found", "agent_outdated"] },

  listTemplates: { method: "get", path: "/v1/templates", summary: "List templates, every version, newest first per name", tag: "templates", auth: true, response: { kind: "json", status: 200, schema: TemplateListSchema }, errors: [] },
  getTemplate: { method: "get", path: "/v1/templates/{ref}", summary: "Get a template: `name` (latest version) or `name:version`", tag: "templates", auth: true, response: { kind: "json", status: 200, schema: TemplateSchema }, errors: ["template_not_found"] },
  buildTemplate: { method: "post", path: "/v1/templates/build", summary: "Build a template version from a tar of its build context (a spec file or Dockerfile and the files it copies); streams the build", tag: "templates", auth: true, query: BuildTemplateQuerySchema, body: { kind: "raw" }, response: { kind: "ndjson", schema: TemplateBuildEventSchema }, errors: ["invalid_request", "invalid_template", "payload_too_large", "runtime_unavailable"] },
  importTemplate: { method: "post", path: "/v1/templates/import", summary: "Import an OCI image (a `docker save` tarball or a tar of an OCI layout) as a template version; streams progress", tag: "templates", auth: true, query: ImportTemplateQuerySchema, body: { kind: "raw" }, response: { kind: "ndjson", schema: TemplateBuildEventSchema }, errors: ["invalid_request", "invalid_template", "payload_too_large"] },
  updateTemplate: { method: "put", path: "/v1/templates/{ref}", summary: "Change a template version's warm-pool size or default resources", tag: "templates", auth: true, body: { kind: "json", schema: UpdateTemplateRequestSchema }, response: { kind: "json", status: 200, schema: TemplateSchema }, errors: ["invalid_request", "template_not_found"] },
  deleteTemplate: { method: "delete", path: "/v1/templates/{ref}", summary: "Delete a template version (`name:version`) or every version (`name`), with layers no other version uses", tag: "templates", auth: true, response: { kind: "empty" }, errors: ["invalid_request", "template_not_found", "template_in_use"] },

  createE2bKey: { method: "post", path: "/v1/e2b/keys", summary: "Issue an API key for the E2B-compatible surface (`e2b_` + 40 hex); the key is in this reply only", tag: "e2b", auth: true, body: { kind: "json", schema: CreateE2bKeyRequestSchema }, response: { kind: "json", status: 201, schema: CreatedE2bKeySchema }, errors: [] },
  listE2bKeys: { method: "get", path: "/v1/e2b/keys", summary: "List the E2B API keys (without the keys themselves)", tag: "e2b", auth: true, response: { kind: "json", status: 200, schema: E2bKeyListSchema }, errors: [] },
  deleteE2bKey: { method: "delete", path: "/v1/e2b/keys/{keyId}", summary: "Revoke an E2B API key", tag: "e2b", auth: true, response: { kind: "empty" }, errors: ["key_not_found"] },

  setSecret: { method: "post", path: "/v1/secrets", summary: "Create a secret, or replace the value and hosts of the one of that name; sandboxes created with it hold a placeholder, and the egress proxy puts the value into request headers to its hosts only. The value is never returned", tag: "secrets", auth: true, body: { kind: "json", schema: CreateSecretRequestSchema }, response: { kind: "json", status: 200, schema: SecretSchema }, errors: ["invalid_request", "secrets_unavailable"] },
  listSecrets: { method: "get", path: "/v1/secrets", summary: "List the secrets (names and hosts, never values)", tag: "secrets", auth: true, response: { kind: "json", status: 200, schema: SecretListSchema }, errors: [] },
  getSecret: { method: "get", path: "/v1/secrets/{name}", summary: "Get a secret's hosts and times (never its value)", tag: "secrets", auth: true, response: { kind: "json", status: 200, schema: SecretSchema }, errors: ["invalid_request", "secret_not_found"] },
  deleteSecret: { method: "delete", path: "/v1/secrets/{name}", summary: "Delete a secret; sandboxes holding its placeholder no longer get the value injected", tag: "secrets", auth: true, response: { kind: "empty" }, errors: ["invalid_request", "secret_not_found"] },
} as const satisfies Record<string, RouteSpec>;

export type RouteId = keyof typeof routes;
