package main

import (
	"runtime"
	"sync"
)

// spareThreads is how many OS threads the agent makes at start and keeps.
//
// The Go runtime makes an OS thread whenever it needs one and has none idle
// (a goroutine blocked in a syscall hands its P on), and when the kernel
// refuses one it does not return an error: the whole process aborts ("failed
// to create new OS thread"). In a crun sandbox the agent shares the sandbox's
// pids limit with the commands, so a fork bomb that fills it would kill the
// agent, and with it the sandbox, the first time the agent needed one more
// thread. Threads the runtime has made stay in its idle pool once released,
// so making them up front means the agent never needs the kernel for a
// thread again under load. (gVisor exempts the agent with RLIMIT_NPROC, see
// nproc.go; the spare threads cost little there too.)
const spareThreads = 32

// reserveThreads makes n OS threads at once (n goroutines each locked to its
// own thread), then lets them go back to the runtime's idle pool.
func reserveThreads(n int) {
	var locked sync.WaitGroup
	release := make(chan struct{})
	var done sync.WaitGroup
	for i := 0; i < n; i++ {
		locked.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	close(release)
	done.Wait()
}
