// What the template store keeps on disk (manifests), how it names templates, and its errors.
import type { NetworkPolicy } from "@stasis/protocol";
import { createHash } from "node:crypto";
import type { Template, TemplateResources } from "@stasis/protocol";
import { builtinRecipes, type TemplateRecipe } from "../template-recipes.js";

export interface TemplateManifest {
  name: string;
  recipeHash: string;
  builtAt: string;
  sizeBytes: number;
}

export type ProgressFn = (line: string) => void;

export class TemplateNotFoundError extends Error {}

export class TemplateSettingsError extends Error {}

/** Defaults of a sandbox that names no resources, for templates that name none either. */
export const DEFAULT_RESOURCES: TemplateResources = { cpu: 1, memoryMiB: 512, diskMiB: 4096 };

/** One built version of a user template: `<root>/<name>/v<version>/template.json`. */
export interface TemplateVersionManifest {
  name: string;
  version: number;
  /** `building` while its build (or snapshot) runs; only `ready` versions are listed or resolved by name. */
  status: "building" | "ready";
  /** The daemon process running the build, while building: a dead one's leftovers are cleaned up. */
  buildPid?: number;
  source: "spec" | "dockerfile" | "oci";
  from: string | null;
  builtAt: string;
  buildMs: number | null;
  /** Layer keys, bottom first (each `<root>/.layers/<key>/diff`). */
  layers: string[];
  /** Bytes of the layers this version added over the template it was built from. */
  sizeBytes: number;
  /** Hash of everything that went into the build: an identical rebuild is not a new version. */
  buildKey: string;
  env: Record<string, string>;
  workdir: string | null;
  user: string | null;
  start: string | null;
  ready: string | null;
  readyTimeoutMs: number | null;
  resources: TemplateResources;
  pool: number;
  /** What its sandboxes may reach unless their create says otherwise (absent: the daemon's default). */
  network?: NetworkPolicy | null;
  /** `runtime`: the runsc (version, platform) that took it; absent in versions built before it was kept. */
  snapshot: { takenAt: string; memoryBytes: number; diskBytes: number; runtime?: string } | null;
}

/** What creating a sandbox needs to know about the template it names: its version's defaults, and more. */
export interface ResolvedTemplate extends Pick<TemplateVersionManifest, "name" | "env" | "workdir" | "user" | "start" | "ready" | "readyTimeoutMs" | "resources" | "pool" | "network"> {
  /** What the sandbox records: `name:version`, or a built-in's bare name. */
  ref: string;
  builtin: boolean;
  /** Checkpoint image and disk of a snapshot template, and the runsc that took it (null: unknown); null otherwise. */
  snapshot: { image: string; disk: string; runtime: string | null } | null;
}

/** `name` or `name:version`. */
export const REF = /^([a-z0-9][a-z0-9._-]{0,62})(?::([1-9][0-9]{0,8}))?$/;
/** Overlay options must fit a page: enough for this many layers of `<root>/.layers/<32 hex>/diff`. */
export const MAX_LAYERS = 40;

export function isBuiltinName(name: string): boolean {
  return Object.hasOwn(builtinRecipes, name);
}

export function recipeHash(recipe: TemplateRecipe): string {
  return createHash("sha256").update(JSON.stringify(recipe)).digest("hex").slice(0, 16);
}

/** The API's view of a user template's version. */
export function toTemplate(v: TemplateVersionManifest, latest: boolean): Template {
  return {
    name: v.name,
    version: v.version,
    ref: `${v.name}:${v.version}`,
    latest,
    source: v.source,
    from: v.from,
    builtAt: v.builtAt,
    buildMs: v.buildMs,
    layers: v.layers.length,
    sizeBytes: v.sizeBytes,
    env: v.env,
    workdir: v.workdir,
    user: v.user,
    start: v.start,
    ready: v.ready,
    resources: v.resources,
    pool: v.pool,
    network: v.network ?? null,
    snapshot: v.snapshot,
  };
}

/** The API's view of a built-in template. */
export function builtinTemplate(b: TemplateManifest): Template {
  return {
    name: b.name,
    version: 1,
    ref: b.name,
    latest: true,
    source: "builtin",
    from: `debian:${builtinRecipes[b.name]?.suite ?? "bookworm"}`,
    builtAt: b.builtAt,
    buildMs: null,
    layers: 1,
    sizeBytes: b.sizeBytes,
    env: {},
    workdir: null,
    user: null,
    start: null,
    ready: null,
    resources: DEFAULT_RESOURCES,
    pool: 0,
    network: null,
    snapshot: null,
  };
}
