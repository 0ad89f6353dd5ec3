package main

import (
	"os"
	"syscall"
	"testing"
)

const fGetPipeSz = 1032

func pipeSize(t *testing.T, f *os.File) int {
	n, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), fGetPipeSz, 0)
	if errno != 0 {
		t.Fatalf("F_GETPIPE_SZ: %v", errno)
	}
	return int(n)
}

func TestWidenPipes(t *testing.T) {
	var ends []*os.File
	defer func() {
		for _, f := range ends {
			f.Close()
		}
	}()
	for i := 0; i < 2; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, r, w)
	}
	before := pipeSize(t, ends[0])
	// The daemon hands the helper the reading end of one pipe and the writing end of the other.
	if err := widenPipes(1<<20, ends[0].Fd(), ends[3].Fd()); err != nil {
		t.Fatal(err)
	}
	for i, f := range []*os.File{ends[1], ends[2]} {
		if got := pipeSize(t, f); got != 1<<20 || got == before {
			t.Errorf("pipe %d: %d bytes (was %d), want %d", i, got, before, 1<<20)
		}
	}
}

func TestWidenPipesRefusesNonPipes(t *testing.T) {
	// What gVisor shows the agent for its host stdio: not a pipe; the helper says so instead of pretending.
	f, err := os.CreateTemp(t.TempDir(), "not-a-pipe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := widenPipes(1<<20, f.Fd()); err == nil {
		t.Fatal("widening a regular file succeeded")
	}
}
