import { describe, expect, it } from "vitest";
import { buildOciSpec, cgroupPathOf, gvisorProcessLimits } from "./oci-spec.js";
import { defaultSeccompProfile } from "./seccomp-profile.js";

const spec = { id: "sbx_0123456789abcdef", dir: "/d", rootfs: "/d/rootfs", agentPath: "/opt/agent", cpu: 1.5, memoryMiB: 256, pidsLimit: 100, hostname: "sandbox", netnsPath: null };

describe("buildOciSpec", () => {
  it("runs the agent as init with the sandbox's limits in its own cgroup", () => {
    const oci = buildOciSpec(spec, { namespaces: [{ type: "pid" }] }) as {
      process: { args: string[]; noNewPrivileges: boolean };
      mounts: { destination: string; source: string; options?: string[] }[];
      linux: { cgroupsPath: string; resources: { memory: { limit: number; swap: number }; cpu: { quota: number; period: number }; pids: { limit: number } } };
    };
    expect(oci.process.args).toEqual(["/.stasis/agent"]);
    // setuid programs (sudo) work inside; the capability set still bounds what root can do.
    expect(oci.process.noNewPrivileges).toBe(false);
    const agent = oci.mounts.find((m) => m.destination === "/.stasis/agent");
    expect(agent).toMatchObject({ source: "/opt/agent" });
    expect(agent?.options).toContain("ro");
    expect(oci.linux.cgroupsPath).toBe(cgroupPathOf(spec.id));
    // swap equal to the limit: no swap beyond memory, so a hog is stopped, not paged out.
    expect(oci.linux.resources).toEqual({ memory: { limit: 256 * 1048576, swap: 256 * 1048576 }, cpu: { quota: 150000, period: 100000 }, pids: { limit: 100 } });
  });

  it("hands the process limit to the agent when it is enforced inside, with a higher host backstop and the capabilities the agent drops", () => {
    type Oci = { process: { env: string[]; capabilities: Record<string, string[]> }; linux: { resources: { pids: { limit: number } } } };
    const inside = buildOciSpec(spec, { namespaces: [], processLimitInside: gvisorProcessLimits(100, 256) }) as Oci;
    expect(inside.process.env).toContain("STASIS_NPROC_LIMIT=100");
    expect(inside.linux.resources.pids.limit).toBe(912);
    for (const set of ["bounding", "effective", "permitted"]) expect(inside.process.capabilities[set]).toEqual(expect.arrayContaining(["CAP_SYS_RESOURCE", "CAP_SETPCAP"]));
    // Without it (crun: the kernel's pids cgroup does the job) nothing changes.
    const plain = buildOciSpec(spec, { namespaces: [] }) as Oci;
    expect(plain.process.env.some((e) => e.startsWith("STASIS_NPROC_LIMIT="))).toBe(false);
    expect(plain.process.capabilities.bounding).not.toContain("CAP_SYS_RESOURCE");
    expect(plain.linux.resources.pids.limit).toBe(100);
  });

  it("holds gVisor commands to the pids limit or three tasks per 4 MiB, whichever is lower, with the host limit out of their reach", () => {
    expect(gvisorProcessLimits(512, 512)).toEqual({ perUser: 384, hostPidsLimit: 2048 });
    expect(gvisorProcessLimits(512, 4096)).toEqual({ perUser: 512, hostPidsLimit: 2560 });
    expect(gvisorProcessLimits(100, 256)).toEqual({ perUser: 100, hostPidsLimit: 912 });
    expect(gvisorProcessLimits(512, 16).perUser).toBe(16);
  });

  it("binds the rootfs's own /tmp only when asked (gVisor would mount a tmpfs)", () => {
    const withTmp = buildOciSpec(spec, { namespaces: [], bindTmp: true }) as { mounts: { destination: string; source: string }[] };
    expect(withTmp.mounts.find((m) => m.destination === "/tmp")?.source).toBe("/d/rootfs/tmp");
    const without = buildOciSpec(spec, { namespaces: [] }) as { mounts: { destination: string }[] };
    expect(without.mounts.find((m) => m.destination === "/tmp")).toBeUndefined();
  });
});

describe("default seccomp profile", () => {
  it("denies namespace, mount, module, bpf and keyring syscalls and checks every clone namespace flag", () => {
    const p = defaultSeccompProfile() as { defaultAction: string; syscalls: { names: string[]; action: string; args?: { value: number; valueTwo: number; op: string }[] }[] };
    expect(p.defaultAction).toBe("SCMP_ACT_ALLOW");
    const denied = p.syscalls.filter((r) => !r.args).flatMap((r) => r.names);
    for (const name of ["mount", "unshare", "setns", "bpf", "init_module", "keyctl", "ptrace", "clone3"]) expect(denied).toContain(name);
    // io_uring with EPERM (errno 1), like the other denials.
    for (const name of ["io_uring_setup", "io_uring_enter", "io_uring_register"]) {
      expect(p.syscalls.find((r) => r.names.includes(name))).toMatchObject({ action: "SCMP_ACT_ERRNO", errnoRet: 1 });
    }
    const cloneRules = p.syscalls.filter((r) => r.names.includes("clone") && r.args);
    expect(cloneRules.length).toBe(7);
    for (const r of cloneRules) expect(r.args?.[0]?.value).toBe(r.args?.[0]?.valueTwo);
  });
});
