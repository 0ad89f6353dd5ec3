// One filesystem step (RUN, packages, COPY) run in a throwaway gVisor sandbox over the layers below it.
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import type { BuildStepRunner } from "../../runtime/driver.js";
import { unmount } from "../../disks/sandbox-filesystem.js";
import { createBuildNetwork } from "../build-network.js";
import { TemplateSpecError, type BuildStep } from "../template-definition.js";
import type { TemplateStore } from "../template-store.js";
import { BuildStepError, duBytes, must, type BuildRequest, type BuildState } from "./build-common.js";
import { contextPath } from "./build-context.js";
import { resolveUser } from "./step-user.js";

/** A step that changes files, and so makes a layer. */
export type FilesystemStep = Exclude<BuildStep, { kind: "env" | "workdir" | "user" }>;

export interface StepLayerDeps {
  store: TemplateStore;
  /** The runtime that runs build steps (gVisor); throws when this daemon has none. */
  steps: () => BuildStepRunner;
  /** Per-step limit (STASIS_BUILD_STEP_TIMEOUT_MS). */
  stepTimeoutMs: number;
}

/** Runs one filesystem step over the layers below it; its writes become the new layer. */
export async function buildStepLayer(deps: StepLayerDeps, key: string, below: string[], step: FilesystemStep, state: BuildState, req: BuildRequest, onLine: (line: string) => void, n: number): Promise<void> {
  const { store } = deps;
  const staging = store.stagingDir(key);
  const merged = join(staging, "rootfs");
  mkdirSync(merged);
  let mounted = false;
  let network: Awaited<ReturnType<typeof createBuildNetwork>> | null = null;
  try {
    const lower = [...below].reverse().map((l) => join(store.layerDir(l), "diff"));
    // overlayfs needs two lower layers or an upper; the upper is this step's new layer.
    await must("mount", ["-t", "overlay", "overlay", "-o", `nodev,lowerdir=${lower.join(":")},upperdir=${join(staging, "diff")},workdir=${join(staging, "work")}`, merged]);
    mounted = true;
    const runAs = step.kind === "packages" || step.kind === "copy" ? { uid: 0, gid: 0 } : await resolveUser(merged, state.user, step);
    const { args, binds, wantsNetwork } = commandFor(step, state, req.contextDir, n);
    if (wantsNetwork) network = await createBuildNetwork();
    const resolv = join(staging, "resolv.conf");
    if (network) writeFileSync(resolv, network.resolvConf);
    const result = await deps.steps().runStep({
      // The daemon's pid in the id lets removeStaleSteps tell a crashed daemon's leftovers.
      id: `stasis-build-${process.pid}-${randomBytes(6).toString("hex")}`,
      dir: staging,
      rootfs: merged,
      args,
      env: { ...state.env, ...(step.kind === "packages" ? { DEBIAN_FRONTEND: "noninteractive" } : {}) },
      uid: runAs.uid,
      gid: runAs.gid,
      cpu: Math.max(1, req.overrides.cpu ?? 0, req.definition.resources.cpu ?? 0),
      memoryMiB: Math.max(2048, req.overrides.memoryMiB ?? 0, req.definition.resources.memoryMiB ?? 0),
      netnsPath: network?.netnsPath ?? null,
      binds: [...binds, ...(network ? [{ source: resolv, destination: "/etc/resolv.conf", readonly: true }] : [])],
      timeoutMs: deps.stepTimeoutMs,
      signal: req.signal,
      onLine,
    });
    if (result.code !== 0) {
      throw new BuildStepError(`step ${n} failed: ${step.text}: ${result.reason}`, n, step.text, step.line);
    }
  } catch (err) {
    if (mounted) await unmount(merged);
    await network?.release();
    rmSync(staging, { recursive: true, force: true });
    if (err instanceof BuildStepError || err instanceof TemplateSpecError) throw err;
    throw new BuildStepError(`step ${n} could not run: ${(err as Error).message}`, n, step.text, step.line);
  }
  await unmount(merged);
  await network?.release();
  rmSync(merged, { recursive: true, force: true });
  rmSync(join(staging, "work"), { recursive: true, force: true });
  rmSync(join(staging, "resolv.conf"), { force: true });
  rmSync(join(staging, "bundle"), { recursive: true, force: true });
  store.commitLayer(key, staging, { sizeBytes: await duBytes(join(staging, "diff")), step: step.text });
}

/** The step's command line, the folders it needs bound in, and whether it may reach the network. */
function commandFor(step: FilesystemStep, state: BuildState, contextDir: string, n: number): { args: string[]; binds: { source: string; destination: string; readonly: boolean }[]; wantsNetwork: boolean } {
  if (step.kind === "run") {
    const argv = typeof step.command === "string" ? ["/bin/sh", "-c", step.command] : step.command;
    // WORKDIR creates its folder, as in Docker; the step then runs there.
    return { args: ["/bin/sh", "-c", 'mkdir -p -- "$1" && cd -- "$1" && shift && exec "$@"', "sh", state.workdir, ...argv], binds: [], wantsNetwork: true };
  }
  if (step.kind === "packages") {
    for (const name of step.names) {
      if (!/^[a-z0-9][a-z0-9+.~:=-]*$/.test(name)) throw new BuildStepError(`'${name}' is not a Debian package name`, n, step.text, step.line, "invalid_template");
    }
    const script = 'apt-get update -q && apt-get install -y -q --no-install-recommends -- "$@" && apt-get clean && rm -rf /var/lib/apt/lists/*';
    return { args: ["/bin/sh", "-c", script, "sh", ...step.names], binds: [], wantsNetwork: true };
  }
  // COPY runs inside the sandbox too: the layers below are untrusted, and a host-side copy would
  // follow their symlinks onto the host.
  const dest = posix.resolve(state.workdir, step.dest);
  const dirTarget = step.dest.endsWith("/") || step.sources.length > 1;
  const script = [
    "set -e",
    'dest=$1; chown_to=$2; dir_target=$3; shift 3',
    'for src in "$@"; do',
    '  s="/.stasis-context/$src"',
    '  if [ -d "$s" ] && [ ! -L "$s" ]; then mkdir -p -- "$dest"; cp -a -- "$s/." "$dest/"; [ -z "$chown_to" ] || (cd "$s" && find . -mindepth 1 -print0 | (cd "$dest" && xargs -0 -r chown -h -- "$chown_to"))',
    '  elif [ "$dir_target" = 1 ]; then mkdir -p -- "$dest"; t="$dest/$(basename -- "$src")"; cp -a -- "$s" "$t"; [ -z "$chown_to" ] || chown -h -R -- "$chown_to" "$t"',
    '  else mkdir -p -- "$(dirname -- "$dest")"; cp -a -- "$s" "$dest"; [ -z "$chown_to" ] || chown -h -R -- "$chown_to" "$dest"; fi',
    "done",
  ].join("\n");
  const sources = step.sources.map((s) => contextPath(contextDir, s, step, n));
  return {
    args: ["/bin/sh", "-c", script, "sh", dest, step.chown ?? "", dirTarget ? "1" : "0", ...sources],
    binds: [{ source: contextDir, destination: "/.stasis-context", readonly: true }],
    wantsNetwork: false,
  };
}
