package main

import (
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// The agent's memory is part of every sandbox snapshot, so it keeps its heap
// small and hands freed memory back to the OS promptly.

const (
	largeMessage = 256 << 10 // messages above this trigger a trim
	trimDelay    = 2 * time.Second
)

// tuneMemory makes the GC work harder than usual for a smaller heap, unless
// GOGC / GOMEMLIMIT say otherwise.
func tuneMemory() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(64 << 20) // soft: GC earlier, scavenge eagerly
	}
}

var trimTimer struct {
	sync.Mutex
	t *time.Timer
}

// trimSoon returns free memory to the OS shortly after the last large
// message, so that a burst (a 4 MiB request, 1 MiB reads) does not stay in
// the agent's RSS, nor in the snapshots taken afterwards.
func trimSoon() {
	trimTimer.Lock()
	defer trimTimer.Unlock()
	if trimTimer.t == nil {
		trimTimer.t = time.AfterFunc(trimDelay, debug.FreeOSMemory)
	} else {
		trimTimer.t.Reset(trimDelay)
	}
}
