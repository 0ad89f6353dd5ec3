package main

import (
	"fmt"
	"log"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// Process limit for the sandbox's commands, not for the agent.
//
// Under gVisor the host cgroup's pids limit also counts the sentry's own
// threads and one or two host tasks per guest task, and the sentry dies when
// it cannot create one (Go's "failed to create new OS thread", or a panic
// when a stub process cannot be made). So a fork bomb must be stopped inside
// the sandbox, before the host limit. gVisor's own pids cgroup does not do it
// (runsc 2024-07-29 charges a fork to one of the task's seven cgroup
// hierarchies chosen at random, so a fork over pids.max fails one time in
// seven), but its RLIMIT_NPROC is exact: a new task fails with EAGAIN once its
// real uid has that many tasks, unless the creator has CAP_SYS_ADMIN or
// CAP_SYS_RESOURCE.
//
// So the agent starts with CAP_SYS_RESOURCE, which exempts it (its threads
// and every process it starts), takes it and CAP_SETPCAP out of the bounding
// set so that no command it starts ever gets them, and sets its own
// RLIMIT_NPROC, soft and hard, which every command inherits and none can
// raise. The limit counts tasks (threads too) per uid, so a command that
// switches to other uids (root can) gets a fresh budget per uid and may reach
// the host limit anyway: that kills only its own sandbox.

const (
	nprocLimitEnv  = "STASIS_NPROC_LIMIT"
	capSetpcap     = 8
	capSysResource = 24
	prCapbsetDrop  = 24 // PR_CAPBSET_DROP
)

// limitCommands applies the limit named by STASIS_NPROC_LIMIT, if any.
// Without the capabilities it needs it changes nothing (a limit the agent
// itself were held to would kill it the first time it needs a thread).
func limitCommands() {
	value := os.Getenv(nprocLimitEnv)
	if value == "" {
		return
	}
	if err := applyNprocLimit(value); err != nil {
		log.Printf("no process limit for commands: %v", err)
	}
}

func applyNprocLimit(value string) error {
	n, err := strconv.ParseUint(value, 10, 32)
	if err != nil || n == 0 {
		return fmt.Errorf("%s=%q is not a positive number", nprocLimitEnv, value)
	}
	if !hasEffectiveCap(capSysResource) {
		return fmt.Errorf("the agent lacks CAP_SYS_RESOURCE, so the limit would hold it too")
	}
	// On every thread: capabilities are per thread, and a command inherits
	// the bounding set of whichever thread forks it. CAP_SETPCAP (needed to
	// drop) goes last.
	for _, c := range []uintptr{capSysResource, capSetpcap} {
		if _, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, prCapbsetDrop, c, 0); errno != 0 {
			return fmt.Errorf("dropping capability %d from the bounding set: %v", c, errno)
		}
	}
	return syscall.Setrlimit(rlimitNproc, &syscall.Rlimit{Cur: n, Max: n})
}

const rlimitNproc = 6 // RLIMIT_NPROC

func hasEffectiveCap(c uint) bool {
	header := struct {
		version uint32
		pid     int32
	}{version: 0x20080522} // _LINUX_CAPABILITY_VERSION_3
	var data [2]struct{ effective, permitted, inheritable uint32 }
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&header)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return false
	}
	return data[c/32].effective&(1<<(c%32)) != 0
}
