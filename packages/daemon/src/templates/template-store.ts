import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { chmod, lchown } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { runCommand } from "../runtime/run-command.js";
import { builtinRecipes, type TemplateRecipe } from "./template-recipes.js";

export interface TemplateManifest {
  name: string;
  recipeHash: string;
  builtAt: string;
  sizeBytes: number;
}

export type ProgressFn = (line: string) => void;

export class TemplateNotFoundError extends Error {}

/**
 * Templates are read-only root filesystems, built once and shared by every sandbox through an overlay.
 * Layout: <root>/<name>/rootfs, <root>/<name>/template.json, and for user-namespaced runtimes a copy with
 * every owner shifted into the namespace's host range: <root>/<name>/rootfs-uid<base>.
 */
export class TemplateStore {
  /** Shifted copies being made: concurrent creates of the first crun sandboxes share one copy. */
  private readonly shifting = new Map<string, Promise<string>>();

  constructor(private readonly root: string) {}

  dir(name: string): string {
    return join(this.root, name);
  }

  manifest(name: string): TemplateManifest | null {
    try {
      return JSON.parse(readFileSync(join(this.dir(name), "template.json"), "utf8")) as TemplateManifest;
    } catch {
      return null;
    }
  }

  list(): TemplateManifest[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root)
      .map((name) => this.manifest(name))
      .filter((m): m is TemplateManifest => m !== null);
  }

  /** The rootfs for a sandbox whose root is host uid `uidShift` (0 without a user namespace). */
  async rootfs(name: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    if (!this.manifest(name)) throw new TemplateNotFoundError(`template '${name}' is not built: run \`stasis template build ${name}\``);
    const plain = join(this.dir(name), "rootfs");
    if (uidShift === 0) return plain;
    const shifted = join(this.dir(name), `rootfs-uid${uidShift}`);
    if (existsSync(`${shifted}.done`)) return shifted;
    let pending = this.shifting.get(shifted);
    if (!pending) {
      pending = this.makeShiftedCopy(plain, shifted, uidShift, progress).finally(() => this.shifting.delete(shifted));
      this.shifting.set(shifted, pending);
    }
    return pending;
  }

  private async makeShiftedCopy(plain: string, shifted: string, uidShift: number, progress?: ProgressFn): Promise<string> {
    progress?.(`copying ${plain} with owners shifted by ${uidShift} (once)`);
    const tmp = `${shifted}.tmp-${process.pid}-${Date.now()}`;
    await run("cp", ["-a", "--reflink=auto", plain, tmp]);
    await shiftOwners(tmp, uidShift);
    rmSync(shifted, { recursive: true, force: true });
    renameSync(tmp, shifted);
    writeFileSync(`${shifted}.done`, new Date().toISOString());
    return shifted;
  }

  /** Builds a template from its recipe unless an identical build exists. Idempotent. */
  async build(name: string, options: { force?: boolean; progress?: ProgressFn } = {}): Promise<TemplateManifest> {
    const recipe = builtinRecipes[name];
    if (!recipe) throw new TemplateNotFoundError(`no recipe for template '${name}' (known: ${Object.keys(builtinRecipes).join(", ")})`);
    const hash = recipeHash(recipe);
    const existing = this.manifest(name);
    const progress = options.progress ?? (() => {});
    if (existing && existing.recipeHash === hash && !options.force) {
      progress(`template ${name} is up to date (built ${existing.builtAt})`);
      return existing;
    }
    const dir = this.dir(name);
    mkdirSync(dir, { recursive: true });
    const staging = join(dir, "rootfs.building");
    rmSync(staging, { recursive: true, force: true });
    progress(`building template ${name}: debian ${recipe.suite} (${recipe.variant}) + ${recipe.packages.join(", ")}`);
    const args = [
      `--variant=${recipe.variant}`,
      `--include=${recipe.packages.join(",")}`,
      ...recipe.customize.map((hook) => `--customize-hook=${hook}`),
      recipe.suite,
      staging,
      recipe.mirror,
    ];
    await run("mmdebstrap", args, progress);
    // Replace atomically-ish: sandboxes hold the old rootfs open through their overlays, so it is moved
    // aside rather than deleted under them.
    const live = join(dir, "rootfs");
    if (existsSync(live)) renameSync(live, join(dir, `rootfs.old-${Date.now()}`));
    renameSync(staging, live);
    // Shifted copies of the old rootfs may be lower layers of running sandboxes: move them aside too.
    for (const entry of readdirSync(dir)) {
      if (entry.endsWith(".done") && entry.startsWith("rootfs-uid")) rmSync(join(dir, entry), { force: true });
      else if (/^rootfs-uid\d+$/.test(entry)) renameSync(join(dir, entry), join(dir, `${entry}.old-${Date.now()}`));
    }
    const sizeBytes = Number((await runCommand("du", ["-sb", live], { timeoutMs: 120_000 })).stdout.split(/\s/)[0]);
    const manifest: TemplateManifest = { name, recipeHash: hash, builtAt: new Date().toISOString(), sizeBytes };
    writeFileSync(join(dir, "template.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    progress(`template ${name} built: ${(sizeBytes / 1024 / 1024).toFixed(0)} MiB`);
    return manifest;
  }
}

export function recipeHash(recipe: TemplateRecipe): string {
  return createHash("sha256").update(JSON.stringify(recipe)).digest("hex").slice(0, 16);
}

async function shiftOwners(root: string, shift: number): Promise<void> {
  const stack = [root];
  while (stack.length > 0) {
    const path = stack.pop()!;
    const st = lstatSync(path);
    await lchown(path, st.uid + shift, st.gid + shift);
    // chown clears setuid/setgid bits: put the mode back (symlinks have none).
    if (!st.isSymbolicLink() && st.mode & 0o6000) await chmod(path, st.mode & 0o7777);
    if (st.isDirectory()) for (const entry of readdirSync(path)) stack.push(join(path, entry));
  }
}

function run(cmd: string, args: string[], progress?: ProgressFn): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let tail: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        tail = [...tail.slice(-20), line];
        progress?.(line);
      });
    }
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}:\n${tail.join("\n")}`))));
  });
}
