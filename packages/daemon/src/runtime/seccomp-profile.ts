/**
 * Default seccomp profile for the crun tier: allow ordinary syscalls, refuse (EPERM) the ones that
 * reach kernel surfaces a sandbox never needs: namespaces and mounts, kernel modules and keyrings, BPF,
 * perf, clock changes, reboot and swap, and io_uring (a large kernel surface with a history of
 * privilege escalations, which Docker's and ChromeOS's profiles refuse too; programs fall back to
 * ordinary syscalls). Modelled on Docker's default denials.
 */
const DENIED = [
  "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
  "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy",
  "init_module", "io_uring_enter", "io_uring_register", "io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
  "mbind", "mount", "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
  "open_by_handle_at", "open_tree", "perf_event_open", "personality", "pivot_root", "process_vm_readv",
  "process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key", "set_mempolicy",
  "setns", "settimeofday", "swapoff", "swapon", "sysfs", "syslog", "umount", "umount2", "unshare",
  "uselib", "userfaultfd", "ustat", "vm86", "vm86old", "fanotify_init",
];

// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
const CLONE_NAMESPACE_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];

export function defaultSeccompProfile(): object {
  const arch = process.arch === "arm64" ? ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"] : ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: arch,
    syscalls: [
      { names: DENIED, action: "SCMP_ACT_ERRNO", errnoRet: 1 },
      // clone with a namespace flag would build new namespaces; plain fork and threads pass. Rules are
      // ORed, a rule's args ANDed: one rule per flag. clone3 hides its flags behind a pointer, so it
      // gets ENOSYS and libc falls back to clone.
      ...CLONE_NAMESPACE_FLAGS.map((flag) => ({
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: 1,
        args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }],
      })),
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
    ],
  };
}
