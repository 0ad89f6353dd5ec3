export { Sandbox, type SandboxInfo, type ListSandboxesOptions, type SandboxPage } from "./sandbox.js";
export { Commands, type Cmd, type RunCommandOptions, type StreamCommandOptions, type StartCommandOptions } from "./commands.js";
export { Code, Execution, type RunCodeOptions } from "./code.js";
export { CommandHandle, type AttachOptions } from "./command-handle.js";
export { CommandStream } from "./command-stream.js";
export { E2bKeys, type CreateE2bKeyOptions } from "./e2b-keys.js";
export { Secrets, type SetSecretOptions } from "./secrets.js";
export { Domains } from "./domains.js";
export type { ForwardOptions, PortForwarding } from "./port-forward.js";
export { Templates, type BuildTemplateOptions, type ImportTemplateOptions, type TemplateResourceOptions, type TemplateStreamOptions } from "./templates.js";
export { MAX_CONTEXT_BYTES } from "./build-context.js";
export { Files, type WriteData, type WriteOptions, type TransferOptions } from "./files.js";
export { Pty, PtyHandle, type PtyConnectOptions, type PtyCreateOptions, type PtyExit, type PtyOutput } from "./pty.js";
export { FileWatch, type WatchChange, type WatchOptions } from "./watch.js";
export type { OutputCallbacks, ProcessResult } from "./results.js";
export { resolveConnection, DEFAULT_API_URL, DEFAULT_REQUEST_TIMEOUT_MS, type ConnectionOptions, type ResolvedConnection } from "./connection.js";
export { HttpClient } from "./http.js";
export * from "./errors.js";
export type {
  CodeContext,
  CodeEvent,
  CodeException,
  CodeLanguage,
  CodeResult,
  CommandEvent,
  CommandResult,
  CreatedE2bKey,
  CreateSandboxRequest,
  E2bKey,
  ErrorBody,
  ErrorCode,
  FileInfo,
  FileList,
  OnTimeout,
  ProcessInfo,
  PtySize,
  WatchEvent,
  Runtime,
  Secret,
  SandboxState,
  SignalName,
  StandbyPolicy,
  StandbyReason,
  Template,
  TemplateBuildEvent,
  TemplateResources,
  UpdateTemplateRequest,
} from "@stasis/protocol";
