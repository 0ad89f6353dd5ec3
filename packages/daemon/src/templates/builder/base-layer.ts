// A build's first layer(s): a Debian release made with mmdebstrap, the built-in base, or another template's layers.
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { streamLines } from "../../runtime/stream-lines.js";
import { builtinRecipes, DEBIAN_CUSTOMIZE, type TemplateRecipe } from "../template-recipes.js";
import { recipeHash, TemplateNotFoundError, type TemplateStore, type TemplateVersionManifest } from "../template-store.js";
import { BuildStepError, duBytes, hash, must, type BuildEmit, type BuildRequest } from "./build-common.js";

/** Where a build starts: the base's top key, its layers, and the template it builds on (null for a Debian or built-in base). */
export interface BaseLayers {
  key: string;
  layers: string[];
  cached: boolean;
  parent: (TemplateVersionManifest & { ref: string }) | null;
}

/** A Debian base made fresh with mmdebstrap: what `FROM debian:<suite>` starts from. */
function debianRecipe(suite: string): TemplateRecipe {
  const base = builtinRecipes.base;
  return { name: `debian-${suite}`, suite, variant: "minbase", packages: ["ca-certificates"], mirror: base?.mirror ?? "http://deb.debian.org/debian", customize: DEBIAN_CUSTOMIZE };
}

/** The first layer(s): a Debian release, the built-in base, or another template's layers and settings. */
export async function resolveBase(store: TemplateStore, req: BuildRequest, emit: BuildEmit, total: number, text: string, pin: (keys: string[]) => void): Promise<BaseLayers> {
  const from = req.definition.from;
  const line = req.definition.fromLine;
  if (from.kind === "template") {
    if (from.ref.split(":")[0] === req.name) throw new BuildStepError(`a template cannot be built from itself ('${from.ref}')`, 1, text, line, "invalid_template");
    let resolved;
    try {
      resolved = store.resolve(from.ref);
    } catch (err) {
      if (err instanceof TemplateNotFoundError) {
        // `FROM node:20` reads as a template ref: say why it is not an image from a registry.
        throw new BuildStepError(`${err.message} (FROM names a Stasis template or debian:<release>; registries are unreachable: \`stasis template import\` a \`docker save\` tarball, then build FROM it)`, 1, text, line, "invalid_template");
      }
      throw err;
    }
    if (resolved.builtin) {
      const recipe = builtinRecipes[resolved.name];
      const key = hash("builtin", resolved.name, recipe ? recipeHash(recipe) : "", store.manifest(resolved.name)?.builtAt ?? "");
      pin([key]);
      const cached = store.hasLayer(key);
      emit({ type: "step", step: 1, total, instruction: text, cached });
      if (!cached) {
        // Hard links: instant, no extra disk, and the layer keeps this build of the base even after
        // `template build --builtin` replaces the base's folder.
        const staging = store.stagingDir(key);
        rmSync(join(staging, "diff"), { recursive: true, force: true });
        await must("cp", ["-al", join(store.dir(resolved.name), "rootfs"), join(staging, "diff")]);
        rmSync(join(staging, "work"), { recursive: true, force: true });
        store.commitLayer(key, staging, { sizeBytes: 0, step: text });
      }
      return { key, layers: [key], cached, parent: null };
    }
    const [name, version] = resolved.ref.split(":");
    const parent = store.versions(name ?? "").find((v) => v.version === Number(version));
    if (!parent) throw new BuildStepError(`template '${from.ref}' vanished during the build`, 1, text, line);
    pin(parent.layers);
    emit({ type: "step", step: 1, total, instruction: text, cached: true });
    return { key: hash("template", parent.buildKey), layers: [...parent.layers], cached: true, parent: { ...parent, ref: resolved.ref } };
  }
  const recipe = debianRecipe(from.suite);
  const key = hash("debian", recipeHash(recipe));
  pin([key]);
  const cached = store.hasLayer(key);
  emit({ type: "step", step: 1, total, instruction: text, cached });
  if (!cached) {
    const staging = store.stagingDir(key);
    try {
      rmSync(join(staging, "diff"), { recursive: true, force: true });
      emit({ type: "progress", message: `mmdebstrap: debian ${from.suite} (minbase), from ${recipe.mirror}` });
      const args = [`--variant=${recipe.variant}`, `--include=${recipe.packages.join(",")}`, ...recipe.customize.map((h) => `--customize-hook=${h}`), recipe.suite, join(staging, "diff"), recipe.mirror];
      const out = await runStreaming("mmdebstrap", args, (l) => emit({ type: "log", step: 1, data: l }), req.signal, 30 * 60_000);
      if (out !== 0) throw new BuildStepError(`mmdebstrap failed (exit ${out}): is ${recipe.mirror} reachable and '${from.suite}' a Debian release?`, 1, text, line);
      rmSync(join(staging, "work"), { recursive: true, force: true });
      store.commitLayer(key, staging, { sizeBytes: await duBytes(join(staging, "diff")), step: text });
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      throw err;
    }
  }
  return { key, layers: [key], cached, parent: null };
}

function runStreaming(cmd: string, args: string[], onLine: (line: string) => void, signal: AbortSignal, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    // Bounded lines (not readline, which buffers a line without limit): see streamLines.
    for (const s of [child.stdout, child.stderr]) streamLines(s, onLine);
    const kill = () => child.kill("SIGKILL");
    const timer = setTimeout(kill, timeoutMs);
    signal.addEventListener("abort", kill, { once: true });
    if (signal.aborted) kill(); // cancelled before it started: a listener added now never fires
    child.on("error", (err) => onLine(`could not start ${cmd}: ${err.message}`));
    child.on("close", (code) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", kill);
      resolve(code);
    });
  });
}
