import type { BenchSection } from "./bench-sections.js";
import type { CodeLanguage, CreateSandboxRequest, NetworkPolicy, Runtime, SetPreviewRequest, SandboxState, SignalName, StandbyPolicy } from "@stasis/protocol";

/** Flags every command accepts. */
export interface GlobalFlags {
  apiUrl?: string;
  apiKey?: string;
  json: boolean;
}

/** --cpu, --memory, --disk and --pool of the template commands; only those given. */
export interface TemplateResourceFlags {
  cpu?: number;
  memoryMiB?: number;
  diskMiB?: number;
  pool?: number;
}

/** What a command line asks for, fully parsed and validated; running it is a separate step. */
export type Command =
  | { kind: "help"; topic: string[] }
  | { kind: "version" }
  | { kind: "serve"; host?: string; port?: number; dataDir?: string; runtime?: Runtime }
  | { kind: "doctor"; dataDir?: string }
  | { kind: "template.build"; context: string; name: string; file?: string; noCache: boolean; snapshot?: boolean; resources: TemplateResourceFlags }
  | { kind: "template.build.builtin"; name: string; force: boolean; dataDir?: string }
  | { kind: "template.import"; name: string; archive: string; image?: string; resources: TemplateResourceFlags }
  | { kind: "template.list" }
  | { kind: "template.get"; ref: string }
  | { kind: "template.rm"; refs: string[] }
  | { kind: "template.set"; ref: string; resources: TemplateResourceFlags }
  | { kind: "bench"; quick: boolean; sections?: BenchSection[]; parts?: string[]; out?: string; compare?: string; compareTo?: string }
  | { kind: "sandbox.create"; request: CreateSandboxRequest }
  | { kind: "sandbox.list"; state?: SandboxState; metadata: Record<string, string> }
  | { kind: "sandbox.get"; id: string }
  | { kind: "sandbox.kill"; ids: string[] }
  | { kind: "sandbox.pause"; ids: string[] }
  | { kind: "sandbox.hibernate"; ids: string[] }
  | { kind: "sandbox.resume"; ids: string[] }
  | { kind: "sandbox.fork"; id: string; count: number }
  | { kind: "sandbox.standby"; id: string; policy: StandbyPolicy }
  | { kind: "sandbox.timeout"; id: string; timeoutMs: number }
  | { kind: "exec"; id: string; cmd: string | string[]; cwd?: string; user?: string; env: Record<string, string>; timeoutMs?: number; stdin: boolean }
  | { kind: "run-code"; id: string; language?: CodeLanguage; context?: string; code?: string; env: Record<string, string>; timeoutMs?: number }
  | { kind: "shell"; id: string; pid?: number; cwd?: string; user?: string }
  | { kind: "files.put"; id: string; local: string; remote: string; mode?: string }
  | { kind: "files.get"; id: string; remote: string; local: string }
  | { kind: "files.ls"; id: string; path: string; depth: number }
  | { kind: "files.rm"; id: string; path: string; recursive: boolean }
  | { kind: "files.mkdir"; id: string; path: string }
  | { kind: "ps"; id: string }
  | { kind: "kill-process"; id: string; pid: number; signal: SignalName }
  | { kind: "e2b.key.create"; name?: string }
  | { kind: "e2b.key.list" }
  | { kind: "e2b.key.revoke"; ids: string[] }
  | { kind: "secret.set"; name: string; hosts: string[]; value: { stdin: true } | { text: string } }
  | { kind: "secret.list" }
  | { kind: "sandbox.network"; id: string; policy: NetworkPolicy }
  | { kind: "sandbox.url"; id: string; port: number; sign: boolean; expiresInS?: number }
  | { kind: "sandbox.ports"; id: string }
  | { kind: "sandbox.preview"; id: string; change: SetPreviewRequest }
  | { kind: "domain.add"; host: string; sandboxId: string; port: number }
  | { kind: "domain.list" }
  | { kind: "domain.rm"; hosts: string[] }
  | { kind: "port-forward"; id: string; port: number; localPort: number; address: string }
  | { kind: "secret.rm"; names: string[] }
  | { kind: "mcp" };

export interface CommandLine {
  global: GlobalFlags;
  command: Command;
}

export type CommandKind = Command["kind"];
export type CommandOf<K extends CommandKind> = Extract<Command, { kind: K }>;
