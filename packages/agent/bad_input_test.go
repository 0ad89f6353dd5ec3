package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Errors that are the caller's or the sandbox's doing get their own codes, never io_error (which the
// daemon reports as a retryable internal error).
func TestFsErrorCodes(t *testing.T) {
	t.Parallel()
	cases := map[syscall.Errno]string{
		syscall.ENOSPC:       codeNoSpace,
		syscall.EDQUOT:       codeNoSpace,
		syscall.ENAMETOOLONG: codeNameTooLong,
		syscall.EBUSY:        codeBusy,
		syscall.ETXTBSY:      codeBusy,
		syscall.EXDEV:        codeCrossDevice,
		syscall.ELOOP:        codeSymlinkLoop,
		syscall.EFBIG:        codeTooLarge,
		syscall.EIO:          codeIOError,
	}
	for errno, want := range cases {
		err := fsError(&os.PathError{Op: "open", Path: "/x", Err: errno})
		var apiErr *apiError
		if !errors.As(err, &apiErr) || apiErr.Code != want {
			t.Errorf("%v: got %v, want %s", errno, err, want)
		}
	}
}

func TestBadPaths(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("n", 256))
	h.fails(map[string]any{"op": "write_open", "path": long}, codeNameTooLong)
	h.fails(map[string]any{"op": "mkdir", "path": long}, codeNameTooLong)
	h.fails(map[string]any{"op": "stat", "path": long}, codeNameTooLong)

	must(t, os.Symlink("loop", filepath.Join(dir, "loop")))
	h.fails(map[string]any{"op": "read", "path": filepath.Join(dir, "loop")}, codeSymlinkLoop)
	must(t, os.Symlink("missing", filepath.Join(dir, "dangling")))
	h.fails(map[string]any{"op": "read", "path": filepath.Join(dir, "dangling")}, codeNotFound)
	must(t, os.Symlink(dir, filepath.Join(dir, "dirlink")))
	h.fails(map[string]any{"op": "read", "path": filepath.Join(dir, "dirlink")}, codeIsADirectory)
}

// A read never blocks on a FIFO and never streams a device forever: only regular files are read.
func TestReadRefusesNonRegularFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	must(t, syscall.Mkfifo(fifo, 0o644))
	h.fails(map[string]any{"op": "read", "path": fifo}, codeNotRegular)
	h.fails(map[string]any{"op": "read", "path": "/dev/zero"}, codeNotRegular)
	link := filepath.Join(t.TempDir(), "zero")
	must(t, os.Symlink("/dev/zero", link))
	h.fails(map[string]any{"op": "read", "path": link}, codeNotRegular)
	// Files of /proc are regular (size 0) and still readable.
	var got struct{ Data []byte }
	h.ok(map[string]any{"op": "read", "path": "/proc/self/status"}, &got)
	if !strings.Contains(string(got.Data), "Pid:") {
		t.Fatalf("read /proc/self/status = %q", got.Data)
	}
}

// A listing's reply fits in one message however long its names are.
func TestListIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	target := "/" + strings.Repeat("t", 4000)
	for i := 0; i < 1200; i++ {
		name := strings.Repeat("a", 200) + strings.Repeat("0", 6-len(itoa(i))) + itoa(i)
		must(t, os.Symlink(target, filepath.Join(dir, name)))
	}
	m := h.call(map[string]any{"op": "list", "path": dir})
	if !m.OK {
		t.Fatalf("list failed: %+v", m.Error)
	}
	if len(m.Result) > maxLineSize {
		t.Fatalf("list reply is %d bytes", len(m.Result))
	}
	var res struct {
		Entries   []fileInfo
		Truncated bool
	}
	must(t, json.Unmarshal(m.Result, &res))
	if !res.Truncated || len(res.Entries) == 0 || len(res.Entries) >= 1200 {
		t.Fatalf("%d entries, truncated %v", len(res.Entries), res.Truncated)
	}
}

// ps stays within one message after long command lines.
func TestPsIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// 1 MiB of arguments per process (one argument may hold 128 KiB), 6 MiB in all.
	cmd := []string{"true"}
	for i := 0; i < 10; i++ {
		cmd = append(cmd, strings.Repeat("x", 100<<10))
	}
	for i := 0; i < 6; i++ {
		pid := h.exec(map[string]any{"cmd": cmd, "subscribe": true})
		h.collect(pid)
	}
	m := h.call(map[string]any{"op": "ps"})
	if !m.OK || len(m.Result) > maxLineSize {
		t.Fatalf("ps: ok %v, %d bytes", m.OK, len(m.Result))
	}
	var res struct {
		Processes []psEntry
		Truncated bool
	}
	must(t, json.Unmarshal(m.Result, &res))
	if !res.Truncated || len(res.Processes) < 6 {
		t.Fatalf("%d processes, truncated %v", len(res.Processes), res.Truncated)
	}
	for _, p := range res.Processes {
		if n := len(strings.Join(p.Cmd, "")); n > psFieldBytes {
			t.Fatalf("pid %d's command line is %d bytes", p.Pid, n)
		}
	}
}
