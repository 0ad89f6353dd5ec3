import type { Sandbox } from "@stasis/sdk";

/** Languages run_code offers; which of them a runner can run is its business (it throws ToolInputError). */
export const CODE_LANGUAGES = ["python", "javascript", "typescript", "bash"] as const;
export type CodeLanguage = (typeof CODE_LANGUAGES)[number];

export interface CodeRunRequest {
  sandbox: Sandbox;
  code: string;
  language: CodeLanguage;
  timeoutMs: number;
  signal: AbortSignal;
  /** Bounds the runner must keep: characters per output stream, bytes of rich results all together. */
  maxOutputChars: number;
  maxResultBytes: number;
}

/** One displayed value, as Jupyter's MIME bundle: png and jpeg in base64. */
export interface CodeDisplay {
  isMainResult: boolean;
  text?: string;
  png?: string;
  jpeg?: string;
  svg?: string;
  html?: string;
  markdown?: string;
}

export interface CodeRunOutput {
  stdout: string;
  stderr: string;
  /** True when output or results were left out (the text says where). */
  truncated: boolean;
  results: CodeDisplay[];
  /** The code's own exception; null when it ran to the end. */
  error: { name: string; value: string; traceback: string } | null;
}

/**
 * How run_code runs code. The default is interpreterRunner (the code interpreter's `sandbox.code.run`,
 * where the SDK and the sandbox have it) over runCodeWithCommands (code as a command, in any sandbox).
 */
export type CodeRunner = (request: CodeRunRequest) => Promise<CodeRunOutput>;
