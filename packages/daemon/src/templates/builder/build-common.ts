// What the builder's parts share: the request, the step error, build state, hashing and disk usage.
import { createHash } from "node:crypto";
import { lstatSync } from "node:fs";
import type { TemplateBuildEvent } from "@stasis/protocol";
import { mustRun, runCommand } from "../../runtime/run-command.js";
import type { TemplateDefinition } from "../template-definition.js";

export type BuildEmit = (event: TemplateBuildEvent) => void;

/** A failed step: the builder's error event names it. */
export class BuildStepError extends Error {
  constructor(
    message: string,
    readonly step: number | null,
    readonly instruction: string | null,
    readonly line: number | null,
    readonly code: "template_build_failed" | "invalid_template" = "template_build_failed",
  ) {
    super(message);
  }
}

export interface BuildOverrides {
  snapshot?: boolean | undefined;
  cpu?: number | undefined;
  memoryMiB?: number | undefined;
  diskMiB?: number | undefined;
  pool?: number | undefined;
}

export interface BuildRequest {
  name: string;
  definition: TemplateDefinition;
  /** The extracted build context (COPY sources are relative to it). */
  contextDir: string;
  noCache: boolean;
  overrides: BuildOverrides;
  signal: AbortSignal;
}

/** What the steps so far have set: it applies to later steps and becomes the template's defaults. */
export interface BuildState {
  env: Record<string, string>;
  workdir: string;
  user: string | null;
}

export function hash(...parts: string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex").slice(0, 32);
}

export function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

export const must = (cmd: string, args: string[]) => mustRun(cmd, args, { timeoutMs: 600_000 });

export async function duBytes(path: string): Promise<number> {
  const out = await runCommand("du", ["-sb", path], { timeoutMs: 300_000 });
  return Number(out.stdout.split(/\s/)[0]) || 0;
}
