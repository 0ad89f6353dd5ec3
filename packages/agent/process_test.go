package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPingAndStats(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var ping struct {
		Version  string
		UptimeMs *int64
	}
	h.ok(map[string]any{"op": "ping"}, &ping)
	if ping.Version != version || ping.UptimeMs == nil {
		t.Fatalf("ping = %+v", ping)
	}
	var stats struct{ RSSKiB, Goroutines, Processes int }
	h.ok(map[string]any{"op": "stats"}, &stats)
	if stats.RSSKiB <= 0 || stats.Goroutines <= 0 {
		t.Fatalf("stats = %+v", stats)
	}
}

func TestExecOutputAndExitCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"sh", "-c", "echo out; echo err >&2; exit 7"}, "subscribe": true})
	r := h.collect(pid)
	if r != (result{stdout: "out\n", stderr: "err\n", code: 7}) {
		t.Fatalf("result = %+v", r)
	}
}

func TestExecKilledBySignal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"sleep", "100"}, "subscribe": true, "tag": "sleeper"})
	if e := h.psEntry(pid); !e.Running || e.ExitCode != nil || e.Tag != "sleeper" || e.User != "root" {
		t.Fatalf("ps while running = %+v", e)
	}
	h.ok(map[string]any{"op": "signal", "pid": pid, "signal": "SIGKILL"}, nil)
	if r := h.collect(pid); r.code != 137 || r.signal != "SIGKILL" {
		t.Fatalf("result = %+v, want 137 SIGKILL", r)
	}
	e := h.psEntry(pid)
	if e.Running || e.ExitCode == nil || *e.ExitCode != 137 || e.Signal == nil || *e.Signal != "SIGKILL" {
		t.Fatalf("ps after exit = %+v", e)
	}
}

func TestExecEnvAndCwd(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	pid := h.exec(map[string]any{
		"cmd":       []string{"sh", "-c", `echo "$FOO"; pwd; echo "$HOME $USER $PATH"`},
		"env":       map[string]string{"FOO": "bar baz"},
		"cwd":       dir,
		"subscribe": true,
	})
	want := "bar baz\n" + dir + "\n/root root " + defaultPath + "\n"
	if r := h.collect(pid); r.stdout != want || r.code != 0 {
		t.Fatalf("result = %+v, want stdout %q", r, want)
	}

	// An explicit PATH is used to resolve cmd[0], and HOME is kept.
	pid = h.exec(map[string]any{
		"cmd":       []string{"sh", "-c", `echo "$HOME $PATH"`},
		"env":       map[string]string{"PATH": "/usr/bin:/bin", "HOME": "/h"},
		"subscribe": true,
	})
	if r := h.collect(pid); r.stdout != "/h /usr/bin:/bin\n" {
		t.Fatalf("result = %+v", r)
	}
}

func TestExecErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fails(map[string]any{"op": "exec", "cmd": []string{"/no/such/binary"}}, codeExecFailed)
	h.fails(map[string]any{"op": "exec", "cmd": []string{"no-such-command-here"}}, codeExecFailed)
	h.fails(map[string]any{"op": "exec", "cmd": []string{"true"}, "cwd": "/no/such/dir"}, codeExecFailed)
	h.fails(map[string]any{"op": "exec", "cmd": []string{"true"}, "cwd": "relative"}, codeInvalidArgument)
	h.fails(map[string]any{"op": "exec", "cmd": []string{"true"}, "user": "no-such-user"}, codeInvalidArgument)
	h.fails(map[string]any{"op": "exec", "cmd": []string{}}, codeInvalidArgument)
	h.fails(map[string]any{"op": "exec", "cmd": []string{"true"}, "env": map[string]string{"A=B": "c"}}, codeInvalidArgument)
	h.fails(map[string]any{"op": "exec", "cmd": []string{"true"}, "window": -1}, codeInvalidArgument)
	h.quiet(50 * time.Millisecond)
}

func TestStdin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"cat"}, "stdin": true, "subscribe": true})
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("hello ")}, nil)
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("world"), "eof": true}, nil)
	if r := h.collect(pid); r.stdout != "hello world" || r.code != 0 {
		t.Fatalf("result = %+v", r)
	}
	// Written after close: the caller's mistake, not an agent failure.
	h.fails(map[string]any{"op": "stdin", "pid": pid, "data": []byte("late")}, codeStdinClosed)

	// Without "stdin", the process reads /dev/null and stdin ops are refused.
	pid = h.exec(map[string]any{"cmd": []string{"sh", "-c", "cat; echo eof"}, "subscribe": true})
	h.fails(map[string]any{"op": "stdin", "pid": pid, "data": []byte("x")}, codeInvalidArgument)
	if r := h.collect(pid); r.stdout != "eof\n" {
		t.Fatalf("result = %+v", r)
	}
	h.fails(map[string]any{"op": "stdin", "pid": 999999999, "data": []byte("x")}, codeNoSuchProcess)
}

func TestBlockedStdinDoesNotBlockOtherRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"sleep", "100"}, "stdin": true, "subscribe": true})
	// sleep never reads: 1 MiB cannot fit in the pipe, so this write blocks.
	pending := h.start(map[string]any{"op": "stdin", "pid": pid, "data": make([]byte, 1<<20)})
	start := time.Now()
	h.ok(map[string]any{"op": "ping"}, nil)
	h.ok(map[string]any{"op": "stat", "path": "/"}, nil)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("requests took %v while a stdin write was blocked", d)
	}
	select {
	case m := <-pending:
		t.Fatalf("stdin write completed: %+v", m)
	default:
	}
	h.ok(map[string]any{"op": "signal", "pid": pid, "signal": "SIGKILL"}, nil)
	if r := h.collect(pid); r.code != 137 {
		t.Fatalf("result = %+v", r)
	}
	if m := h.wait(pending); m.OK || m.Error.Code != codeStdinClosed {
		t.Fatalf("blocked stdin write ended with %+v, want stdin_closed", m)
	}
}

func TestCreditFlowControl(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const total, window = 1000000, 65536
	pid := h.exec(map[string]any{"cmd": []string{"head", "-c", "1000000", "/dev/zero"}, "subscribe": true, "window": window})
	got := h.outBytes(pid, 300*time.Millisecond)
	if got < window || got > window+readChunk {
		t.Fatalf("received %d bytes with a window of %d", got, window)
	}
	if !h.psEntry(pid).Running {
		t.Fatal("the process should be blocked writing, not finished")
	}
	h.send(`{"op":"ack","pid":` + itoa(pid) + `,"bytes":100000}`) // fire-and-forget
	if n := h.outBytes(pid, 300*time.Millisecond); n < 100000 || n > 100000+readChunk {
		t.Fatalf("after acking 100000 bytes, received %d more", n)
	} else {
		got += n
	}
	h.send(`{"op":"ack","pid":` + itoa(pid) + `,"bytes":10000000}`)
	r := h.collect(pid)
	if got+len(r.stdout) != total || r.code != 0 {
		t.Fatalf("received %d bytes in total, exit %d; want %d, 0", got+len(r.stdout), r.code, total)
	}
}

func TestUnsubscribedProcessReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"sh", "-c", "printf one; printf two >&2; printf three; exit 3"}})
	eventually(t, "the process has exited", func() bool { return !h.psEntry(pid).Running })
	h.quiet(200 * time.Millisecond) // nothing is sent while unsubscribed

	var res struct {
		Pid     int
		Running bool
	}
	h.ok(map[string]any{"op": "attach", "pid": pid, "replay": true}, &res)
	if res.Pid != pid || res.Running {
		t.Fatalf("attach = %+v", res)
	}
	if r := h.collect(pid); r != (result{stdout: "onethree", stderr: "two", code: 3}) {
		t.Fatalf("replay = %+v", r)
	}
	// Without replay, attaching to an exited process reports only its exit.
	h.ok(map[string]any{"op": "attach", "pid": pid}, nil)
	if r := h.collect(pid); r != (result{code: 3}) {
		t.Fatalf("attach without replay = %+v", r)
	}
	h.fails(map[string]any{"op": "attach", "pid": 999999999}, codeNoSuchProcess)
}

func TestAttachReplayThenLive(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"sh", "-c", "echo a; read x; echo b"}, "stdin": true})
	time.Sleep(100 * time.Millisecond) // let "a" reach the ring
	h.ok(map[string]any{"op": "attach", "pid": pid, "replay": true}, nil)
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("go\n")}, nil)
	if r := h.collect(pid); r.stdout != "a\nb\n" {
		t.Fatalf("result = %+v", r)
	}
}

func TestDetach(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"cat"}, "stdin": true, "subscribe": true})
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("one\n")}, nil)
	if ev := h.event(); string(ev.Data) != "one\n" {
		t.Fatalf("event = %+v", ev)
	}
	h.ok(map[string]any{"op": "detach", "pid": pid}, nil)
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("two\n")}, nil)
	h.quiet(200 * time.Millisecond)
	h.ok(map[string]any{"op": "attach", "pid": pid}, nil)
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("three\n"), "eof": true}, nil)
	if r := h.collect(pid); r.stdout != "three\n" {
		t.Fatalf("after re-attaching without replay: %+v", r)
	}
	h.ok(map[string]any{"op": "attach", "pid": pid, "replay": true}, nil)
	if r := h.collect(pid); r.stdout != "one\ntwo\nthree\n" {
		t.Fatalf("replay: %+v", r)
	}
}

func TestPs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"sleep", "100"}, "tag": "bg"})
	e := h.psEntry(pid)
	if e.Tag != "bg" || !e.Running || e.Cwd != "/root" || e.User != "root" ||
		strings.Join(e.Cmd, " ") != "sleep 100" || time.Since(time.UnixMilli(e.StartedAtMs)) > time.Minute {
		t.Fatalf("ps entry = %+v", e)
	}
	h.ok(map[string]any{"op": "signal", "pid": pid, "signal": "SIGTERM"}, nil)
	eventually(t, "ps shows the exit", func() bool { return !h.psEntry(pid).Running })
	e = h.psEntry(pid)
	if *e.ExitCode != 143 || *e.Signal != "SIGTERM" {
		t.Fatalf("ps entry after SIGTERM = %+v", e)
	}
	h.quiet(200 * time.Millisecond)
}

func TestSignalReachesProcessGroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"sh", "-c", "sleep 100 & sleep 100"}, "subscribe": true})
	eventually(t, "both sleeps run", func() bool { return len(groupMembers(t, pid)) >= 3 })
	h.ok(map[string]any{"op": "signal", "pid": pid, "signal": 9}, nil) // numeric form
	if r := h.collect(pid); r.code != 137 || r.signal != "SIGKILL" {
		t.Fatalf("result = %+v", r)
	}
	eventually(t, "the whole group is gone", func() bool {
		return syscall.Kill(-pid, 0) == syscall.ESRCH
	})
	h.fails(map[string]any{"op": "signal", "pid": pid, "signal": "SIGTERM"}, codeNoSuchProcess)
	h.fails(map[string]any{"op": "signal", "pid": pid, "signal": "SIGBOGUS"}, codeInvalidArgument)
}

func TestUserSwitching(t *testing.T) {
	t.Parallel()
	if _, err := lookupUser("nobody"); err != nil {
		t.Skip("no nobody user:", err)
	}
	h := newHarness(t)
	for _, user := range []any{"nobody", 65534} {
		pid := h.exec(map[string]any{
			"cmd":       []string{"sh", "-c", `id -u; id -g; pwd; echo "$HOME $USER"`},
			"user":      user,
			"subscribe": true,
		})
		if r := h.collect(pid); r.stdout != "65534\n65534\n/\n/nonexistent nobody\n" {
			t.Fatalf("as %v: %+v", user, r)
		}
	}
}

func TestExitNotHeldByBackgroundGrandchild(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	start := time.Now()
	pid := h.exec(map[string]any{"cmd": []string{"sh", "-c", "sleep 5 & echo done"}, "subscribe": true})
	r := h.collect(pid)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("exit event after %v; the background sleep held it", elapsed)
	}
	if r.stdout != "done\n" || r.code != 0 {
		t.Errorf("result = %+v", r)
	}
	h.ok(map[string]any{"op": "signal", "pid": pid, "signal": "SIGKILL"}, nil) // the sleep
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.send("{not json")
	h.send(`{"op":"ping"}`)                          // no id: ignored
	h.send(`{"op":"ack","pid":999999999,"bytes":1}`) // unknown pid: ignored
	h.send(`{"id":"x","op":"ping"}`)                 // unusable id: ignored
	h.send(strings.Repeat("x", maxLineSize+10))      // over-long line: ignored
	h.send(`{"id":1000,"op":"ping","pad":"` + strings.Repeat("y", maxLineSize) + `"}`)
	h.quiet(100 * time.Millisecond)
	h.ok(map[string]any{"op": "ping"}, nil)
	h.fails(map[string]any{"op": "frobnicate"}, codeUnknownOp)
	h.fails(map[string]any{"op": "ps", "pid": "not a number"}, codeInvalidArgument)
	h.fails(map[string]any{"op": "exec", "cmd": "true"}, codeInvalidArgument)
	h.fails(map[string]any{"op": "stdin", "pid": 1, "data": "not base64!"}, codeInvalidArgument)
	h.quiet(50 * time.Millisecond)
}

func TestHandlerPanicBecomesIOError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fails(map[string]any{"op": "test_panic"}, codeIOError)
	h.ok(map[string]any{"op": "ping"}, nil)
}

func TestReadProcFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var res struct {
		Data []byte
		EOF  bool
	}
	h.ok(map[string]any{"op": "read", "path": "/proc/self/status"}, &res) // size 0 in stat
	if !strings.Contains(string(res.Data), "VmRSS") || !res.EOF {
		t.Fatalf("read /proc/self/status: %d bytes, eof %v", len(res.Data), res.EOF)
	}
}

// groupMembers returns the pids whose process group is pgid.
func groupMembers(t *testing.T, pgid int) []int {
	var members []int
	for pid := range allPids(t) {
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			members = append(members, pid)
		}
	}
	return members
}
