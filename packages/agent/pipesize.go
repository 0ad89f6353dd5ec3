package main

import (
	"fmt"
	"syscall"
)

// fSetPipeSz is fcntl's F_SETPIPE_SZ (Linux).
const fSetPipeSz = 1031

// widenPipes sets the capacity of the pipes on fds (0 and 1: the channel) to
// size bytes. The daemon runs the agent binary on the host with -pipe-size and
// the channel FIFOs as its stdin and stdout: with the default 64 KiB, a 1 MiB
// frame crosses the pipe in 16 pieces, each a wake-up of gVisor's sentry and
// a read by the agent. (Inside gVisor the agent cannot do it itself: its
// stdio are host files there, not pipes, and fcntl refuses.)
func widenPipes(size int, fds ...uintptr) error {
	for _, fd := range fds {
		if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, uintptr(size)); errno != 0 {
			return fmt.Errorf("fd %d: F_SETPIPE_SZ %d: %v", fd, size, errno)
		}
	}
	return nil
}
