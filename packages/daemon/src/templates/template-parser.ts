// Template files: a spec (stasis.yaml/.yml/.json, parser/spec.ts) or a Dockerfile (parser/dockerfile.ts),
// both parsed into a TemplateDefinition. Callers import from here.
import { TemplateSpecError, type TemplateDefinition } from "./template-definition.js";
import { parseDockerfile } from "./parser/dockerfile.js";
import { parseSpec } from "./parser/spec.js";

export { formatBaseImage, parseBaseImage } from "./parser/base-image.js";
export { parseDockerfile, type DockerfileOptions } from "./parser/dockerfile.js";
export { MAX_SPEC_BYTES, MAX_STEPS } from "./parser/checks.js";
export { shellQuote } from "./shell-quote.js";
export { expandWord } from "./parser/shell-words.js";
export { parseSpec } from "./parser/spec.js";

/** Files a build looks for in its context when none is named, in this order. */
export const DEFAULT_SPEC_FILES: readonly string[] = ["stasis.yaml", "stasis.yml", "stasis.json", "Dockerfile"];

export type TemplateFileKind = "yaml" | "json" | "dockerfile";

/** What a file is by its name: a YAML or JSON spec, a Dockerfile, or null when neither. */
export function templateFileKind(fileName: string): TemplateFileKind | null {
  const base = (fileName.split("/").pop() ?? fileName).toLowerCase();
  if (base.endsWith(".yaml") || base.endsWith(".yml")) return "yaml";
  if (base.endsWith(".json")) return "json";
  for (const name of ["dockerfile", "containerfile"]) {
    if (base === name || base.endsWith(`.${name}`) || base.startsWith(`${name}.`)) return "dockerfile";
  }
  return null;
}

/** Parses a spec or a Dockerfile, picked by its file name. */
export function parseTemplateFile(fileName: string, text: string): TemplateDefinition {
  const kind = templateFileKind(fileName);
  if (kind === null) {
    throw new TemplateSpecError(
      `can't tell what "${fileName}" is: name a spec *.yaml, *.yml or *.json, or a Dockerfile (Dockerfile, *.Dockerfile, Dockerfile.* or Containerfile)`,
      null,
    );
  }
  return kind === "dockerfile" ? parseDockerfile(text) : parseSpec(text, kind);
}
