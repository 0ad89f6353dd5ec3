package main

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper is the agent's only caller of wait4. As PID 1 the agent inherits
// every orphan in the sandbox, so it reaps all children with wait4(-1) when
// SIGCHLD arrives, hands the statuses of processes it started to their
// waiters and discards the rest. (exec.Cmd.Wait would race with it, so
// processes are started with syscall.ForkExec.)
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan<- syscall.WaitStatus
}

var (
	children        = &reaper{waiters: make(map[int]chan<- syscall.WaitStatus)}
	startReaperOnce sync.Once
)

func startReaper() {
	startReaperOnce.Do(func() {
		sigchld := make(chan os.Signal, 1)
		signal.Notify(sigchld, syscall.SIGCHLD)
		go func() {
			for {
				children.reapAll() // first pass catches exits before Notify
				<-sigchld
			}
		}()
	})
}

// start calls fork (which returns the new pid) and registers status, which
// must have room for one value, as the child's waiter. The registry stays
// locked across fork and each reap, so a child that exits at once cannot be
// reaped before its waiter exists, and a reaped pid cannot be reused by a new
// child before its status has been dispatched.
func (r *reaper) start(fork func() (int, error), status chan<- syscall.WaitStatus) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err == nil {
		r.waiters[pid] = status
	}
	return pid, err
}

// killGroup sends sig to the process group led by pid, but only while pid is
// an unreaped child: holding the registry lock keeps it from being reaped
// meanwhile, so a reused pid can never be hit.
func (r *reaper) killGroup(pid int, sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.waiters[pid]; !ok {
		return syscall.ESRCH
	}
	return syscall.Kill(-pid, sig)
}

// reapAll collects every child that has terminated.
func (r *reaper) reapAll() {
	for {
		var ws syscall.WaitStatus
		r.mu.Lock()
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		waiter := r.waiters[pid]
		if pid > 0 {
			delete(r.waiters, pid)
		}
		r.mu.Unlock()
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil || pid <= 0:
			return // ECHILD (no children) or none has exited yet
		case waiter != nil:
			waiter <- ws
		}
	}
}

// becomeSubreaper makes orphaned descendants reparent to this process when it
// is not PID 1 (development, tests), so that it reaps them like init would.
func becomeSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
