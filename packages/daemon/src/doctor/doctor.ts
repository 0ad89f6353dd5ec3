import { accessSync, constants, existsSync, statfsSync } from "node:fs";
import type { DaemonConfig } from "../config/config.js";
import { detectCgroupMode, freezerAvailable, missingControllers } from "../runtime/cgroups.js";
import { createHostDrivers } from "../runtime/drivers/create-drivers.js";
import { runCommand } from "../runtime/run-command.js";
import { hostForwardPolicy, uplinks } from "../network/host-firewall.js";
import { TemplateStore } from "../templates/template-store.js";
import { networkChecks } from "./network-checks.js";

export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** A warning does not stop the daemon from working. */
  severity: "error" | "warning";
  detail: string;
  fix?: string;
}

const SETUP = "sudo ./scripts/up.sh (or: sudo bash scripts/install-host-deps.sh)";

/** Checks every host feature Stasis depends on and says how to fix what is missing. */
export async function runDoctor(config: DaemonConfig): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const add = (c: DoctorCheck) => checks.push(c);

  add({
    name: "root",
    ok: process.getuid?.() === 0,
    severity: "error",
    detail: process.getuid?.() === 0 ? "running as root" : `running as uid ${process.getuid?.()}`,
    fix: "run the daemon as root: runtimes, mounts and cgroups need it",
  });
  const [major] = process.versions.node.split(".").map(Number);
  add({ name: "node", ok: (major ?? 0) >= 20, severity: "error", detail: `node ${process.versions.node}`, fix: "install Node.js >= 20" });

  const cgroupMode = detectCgroupMode();
  const drivers = createHostDrivers({ ...config, cgroupMode });
  const unknown = { available: false, reason: "not configured", details: {} as Record<string, string> };
  const gvisor = (await drivers.get("gvisor")?.probe()) ?? unknown;
  add({
    name: "runsc (gVisor)",
    ok: gvisor.available,
    severity: config.defaultRuntime === "gvisor" ? "error" : "warning",
    detail: gvisor.available ? `version ${gvisor.details.version}, platform ${gvisor.details.platform}` : (gvisor.reason ?? "unavailable"),
    fix: `Debian 12: apt-get install -t bookworm-backports runsc; elsewhere: ${SETUP}`,
  });
  if (gvisor.available && gvisor.details.platform === "ptrace") {
    add({ name: "gVisor platform", ok: false, severity: "warning", detail: "this runsc only supports ptrace (slow)", fix: "install runsc >= 2023 (bookworm-backports) for systrap" });
  }
  const crun = (await drivers.get("crun")?.probe()) ?? unknown;
  add({
    name: "crun",
    ok: crun.available,
    severity: config.defaultRuntime === "crun" ? "error" : "warning",
    detail: crun.available ? `version ${crun.details.version}` : (crun.reason ?? "unavailable"),
    fix: "apt-get install crun",
  });

  const missing = missingControllers(cgroupMode);
  add({
    name: "cgroups",
    ok: missing.length === 0,
    severity: "error",
    detail: `cgroup ${cgroupMode}${missing.length ? `; missing controllers: ${missing.join(", ")}` : "; cpu, memory, pids present"}`,
    fix: "enable the cpu, memory and pids controllers (cgroup_enable=memory on the kernel command line; on v2 add them to cgroup.subtree_control)",
  });
  add({
    name: "freezer",
    ok: freezerAvailable(cgroupMode),
    severity: "warning",
    detail: freezerAvailable(cgroupMode) ? `available (${cgroupMode === "v2" ? "cgroup.freeze" : "freezer controller"})` : "not found",
    fix: "mount the freezer controller (cgroup v1) or use cgroup v2; pausing sandboxes needs it",
  });

  const agentOk = existsSync(config.agentPath) && canExecute(config.agentPath);
  add({ name: "guest agent", ok: agentOk, severity: "error", detail: agentOk ? config.agentPath : `missing: ${config.agentPath}`, fix: "bash packages/agent/build.sh (needs Go >= 1.22)" });

  const templates = new TemplateStore(config.templatesDir);
  const base = templates.manifest("base");
  add({
    name: "template base",
    ok: base !== null,
    severity: "error",
    detail: base ? `built ${base.builtAt}, ${(base.sizeBytes / 1048576).toFixed(0)} MiB` : "not built",
    fix: "stasis template build --builtin base (needs mmdebstrap and access to deb.debian.org)",
  });

  for (const tool of ["mkfs.ext4", "mount", "unshare", "mkfifo"]) {
    const out = await runCommand("sh", ["-c", `command -v ${tool}`], { timeoutMs: 5_000 });
    add({ name: tool, ok: out.code === 0, severity: "error", detail: out.code === 0 ? out.stdout.trim() : "not found", fix: "apt-get install e2fsprogs mount util-linux coreutils" });
  }
  // Optional: only the feature named needs the tool, so a missing one is a warning.
  const featureTools = [
    { tool: "umoci", pkg: "umoci", feature: "stasis template import" },
    { tool: "skopeo", pkg: "skopeo", feature: "stasis template import (docker save tarballs)" },
    { tool: "nft", pkg: "nftables", feature: "network access in template builds and sandboxes" },
    { tool: "openssl", pkg: "openssl", feature: "secrets over HTTPS (the egress proxy's certificate authority)" },
  ];
  for (const { tool, pkg, feature } of featureTools) {
    const out = await runCommand("sh", ["-c", `command -v ${tool}`], { timeoutMs: 5_000 });
    add({
      name: tool,
      ok: out.code === 0,
      severity: "warning",
      detail: out.code === 0 ? out.stdout.trim() : `not found; needed for ${feature}`,
      fix: `apt-get install ${pkg} (or: sudo bash scripts/install-host-deps.sh)`,
    });
  }
  // Build steps leave by the default-route interfaces only; the FORWARD policy is informational (handled).
  const [out, policy] = await Promise.all([uplinks(), hostForwardPolicy()]);
  add({
    name: "build network",
    ok: out.length > 0,
    severity: "warning",
    detail:
      out.length > 0
        ? `template RUN steps go out by ${out.join(", ")}${policy && policy !== "ACCEPT" ? `; the host's FORWARD policy is ${policy}, so each build adds accept rules for its stb+ interfaces` : ""}`
        : "no default route: template RUN and packages steps get no network",
    fix: "give the host a default route (template builds that install packages need deb.debian.org)",
  });
  checks.push(...(await networkChecks(config.network)));
  const overlay = await runCommand("sh", ["-c", "grep -qw overlay /proc/filesystems || modprobe overlay"], { timeoutMs: 5_000 });
  add({ name: "overlayfs", ok: overlay.code === 0, severity: "error", detail: overlay.code === 0 ? "supported" : "overlay filesystem missing", fix: "modprobe overlay" });
  add({ name: "loop devices", ok: existsSync("/dev/loop-control"), severity: "error", detail: existsSync("/dev/loop-control") ? "/dev/loop-control present" : "no /dev/loop-control", fix: "modprobe loop" });

  const disk = existsSync(config.dataDir) ? statfsSync(config.dataDir) : statfsSync("/");
  const freeGiB = (disk.bavail * disk.bsize) / 1024 ** 3;
  add({
    name: "disk space",
    ok: freeGiB >= 5,
    severity: "warning",
    detail: `${freeGiB.toFixed(1)} GiB free for ${config.dataDir}`,
    fix: "free space or set STASIS_DATA_DIR to a larger disk (templates ~400 MiB, each sandbox's disk grows with use)",
  });
  return checks;
}

function canExecute(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
