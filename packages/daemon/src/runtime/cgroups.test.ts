import { describe, expect, it } from "vitest";
import { detectCgroupMode } from "./cgroups.js";

describe("detectCgroupMode", () => {
  it("recognises pure cgroup v2 (Ubuntu 24.04, Debian 13)", () => {
    expect(detectCgroupMode("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n")).toBe("v2");
  });
  it("recognises hybrid (v1 controllers plus a cgroup2 mount at unified)", () => {
    const mounts = [
      "tmpfs /sys/fs/cgroup tmpfs ro 0 0",
      "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0",
      "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0",
    ].join("\n");
    expect(detectCgroupMode(mounts)).toBe("hybrid");
  });
  it("recognises pure v1", () => {
    expect(detectCgroupMode("tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n")).toBe("v1");
  });
});
