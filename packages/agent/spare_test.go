package main

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Warm shell (spare.go): a claimed spare is recognised by its pid, which the
// test reads from the agent before the exec.

func (h *harness) prewarm(env map[string]string) {
	h.t.Helper()
	h.ok(map[string]any{"op": "prewarm", "env": env}, nil)
}

// waitSpare waits until a spare other than not can be claimed and returns
// its pid.
func (h *harness) waitSpare(not int) int {
	h.t.Helper()
	pid := 0
	eventually(h.t, "a spare shell is ready", func() bool {
		pid = h.agent.spares.claimablePid()
		return pid != 0 && pid != not
	})
	return pid
}

func sh(script string, extra map[string]any) map[string]any {
	req := map[string]any{"cmd": []string{"/bin/sh", "-c", script}, "subscribe": true}
	for k, v := range extra {
		req[k] = v
	}
	return req
}

// warmExec runs script (with env) on the ready spare and returns its result.
func (h *harness) warmExec(script string, env map[string]string) result {
	h.t.Helper()
	spare := h.waitSpare(0)
	pid := h.exec(sh(script, map[string]any{"env": env}))
	if pid != spare {
		h.t.Fatalf("exec got pid %d, not the spare %d", pid, spare)
	}
	return h.collect(pid)
}

// collectAll gathers the results of several processes whose events interleave.
func (h *harness) collectAll(pids ...int) map[int]result {
	h.t.Helper()
	out, errs := map[int]*strings.Builder{}, map[int]*strings.Builder{}
	results := map[int]result{}
	for _, pid := range pids {
		out[pid], errs[pid] = new(strings.Builder), new(strings.Builder)
	}
	for len(results) < len(pids) {
		ev := h.event()
		if out[ev.Pid] == nil {
			h.t.Fatalf("event %s for unexpected pid %d", ev.Ev, ev.Pid)
		}
		switch {
		case ev.Ev == "out" && ev.Fd == 1:
			out[ev.Pid].Write(ev.Data)
		case ev.Ev == "out" && ev.Fd == 2:
			errs[ev.Pid].Write(ev.Data)
		case ev.Ev == "exit":
			results[ev.Pid] = result{stdout: out[ev.Pid].String(), stderr: errs[ev.Pid].String(), code: ev.Code}
		}
	}
	return results
}

func groupGone(pgid int) bool { return syscall.Kill(-pgid, 0) == syscall.ESRCH }

func TestWarmShellClaim(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	env := map[string]string{"FOO": "bar"}
	h.prewarm(env)
	spare := h.waitSpare(0)

	// Hidden until claimed.
	for _, e := range h.ps() {
		if e.Pid == spare {
			t.Fatalf("ps shows the spare: %+v", e)
		}
	}
	h.fails(map[string]any{"op": "signal", "pid": spare, "signal": "SIGKILL"}, codeNoSuchProcess)
	h.fails(map[string]any{"op": "attach", "pid": spare}, codeNoSuchProcess)
	h.fails(map[string]any{"op": "stdin", "pid": spare, "data": []byte("x")}, codeNoSuchProcess)
	var stats struct{ Processes int }
	h.ok(map[string]any{"op": "stats"}, &stats)
	if stats.Processes != 0 {
		t.Fatalf("stats counts the spare: %+v", stats)
	}

	time.Sleep(50 * time.Millisecond) // startedAtMs must be the claim's time
	before := time.Now().UnixMilli()
	pid := h.exec(sh(`echo hi; echo "$FOO" >&2`, map[string]any{"env": env, "tag": "warm"}))
	if pid != spare {
		t.Fatalf("exec got pid %d, not the spare %d", pid, spare)
	}
	if r := h.collect(pid); r != (result{stdout: "hi\n", stderr: "bar\n"}) {
		t.Fatalf("result = %+v", r)
	}
	e := h.psEntry(pid)
	if !slices.Equal(e.Cmd, []string{"/bin/sh", "-c", `echo hi; echo "$FOO" >&2`}) || e.Tag != "warm" ||
		e.User != "root" || e.Cwd != defaultCwd(&account{home: "/root"}) || e.Running ||
		*e.ExitCode != 0 || e.StartedAtMs < before {
		t.Fatalf("ps entry = %+v (exec sent at %d)", e, before)
	}
	h.waitSpare(spare) // replaced in the background
	h.quiet(100 * time.Millisecond)
}

func TestWarmShellExitCodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(nil)
	for _, c := range []struct {
		script string
		want   result
	}{
		{"exit 7", result{code: 7}},
		{"echo out; echo err >&2; exit 3", result{stdout: "out\n", stderr: "err\n", code: 3}},
		{"false", result{code: 1}},
		{"kill -TERM $$", result{code: 143, signal: "SIGTERM"}},
	} {
		if r := h.warmExec(c.script, nil); r != c.want {
			t.Errorf("%q: result = %+v, want %+v", c.script, r, c.want)
		}
	}
}

// The warm shell runs any command text exactly as `sh -c` does.
func TestWarmShellMatchesShC(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(nil)
	cwd := defaultCwd(&account{home: "/root"})
	for _, script := range []string{
		"x='single \"double\" $notexpanded'\n" +
			"y=\"$(printf '%s\\n' 'a  b' | tr a A)\"\n" +
			"printf '[%s]\\n' \"$x\" \"$y\" \"$0\" \"$#\" \"$*\" \"$?\"\n" +
			"cat <<EOF\nhere $y `echo tick` \\$HOME\nEOF\n" +
			"echo 'back\\slash' \"tab\tx\" $(echo $(echo nested))\n",
		"echo trailing newlines\n\n\n",
		"echo continued \\\n",
		"echo ends with a backslash\\",
		"cat <<EOF\nunterminated here-document",
		"ls /proc/self/fd; exec 3>&-; echo $?",
		"set -- a b; echo $#; shift; echo $1",
		"trap 'echo bye' EXIT; exit 4",
		"", "\n", "# only a comment",
		"if true; then", // syntax error: only the exit code is compared
	} {
		normal := h.exec(sh(script, map[string]any{"cwd": cwd}))
		want := h.collect(normal)
		got := h.warmExec(script, nil)
		if strings.HasPrefix(script, "if") {
			got.stderr, want.stderr = "", "" // dash names the script: "/dev/fd/3: Syntax error"
		}
		if got != want {
			t.Errorf("%q:\nwarm   %+v\nsh -c  %+v", script, got, want)
		}
	}
}

func TestWarmShellLargeCommand(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(nil)
	data := strings.Repeat("0123456789abcdef", 100<<10/16) // 100 KiB, more than a pipe holds
	if r := h.warmExec("printf %s '"+data+"'", nil); r.stdout != data || r.code != 0 {
		t.Fatalf("got %d bytes, code %d", len(r.stdout), r.code)
	}
}

func TestWarmShellNonMatchingRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	env := map[string]string{"A": "1"}
	h.prewarm(env)
	spare := h.waitSpare(0)
	for _, req := range []map[string]any{
		sh("echo ok", map[string]any{"env": map[string]string{"A": "2"}}),
		sh("echo ok", nil), // no env
		sh("echo ok", map[string]any{"env": env, "cwd": "/"}),
		sh("echo ok", map[string]any{"env": env, "stdin": true}),
		sh("echo ok", map[string]any{"env": env, "user": "0"}),
		{"cmd": []string{"sh", "-c", "echo ok"}, "env": env, "subscribe": true},
		{"cmd": []string{"/bin/sh", "-c", "echo ok", "name"}, "env": env, "subscribe": true},
		{"cmd": []string{"/bin/echo", "ok"}, "env": env, "subscribe": true},
	} {
		pid := h.exec(req)
		if pid == spare {
			t.Fatalf("%v claimed the spare", req)
		}
		if req["stdin"] == true {
			h.ok(map[string]any{"op": "stdin", "pid": pid, "eof": true}, nil)
		}
		if r := h.collect(pid); r != (result{stdout: "ok\n"}) {
			t.Fatalf("%v: result = %+v", req, r)
		}
	}
	// Too long for an argv element: fails as it would without a spare.
	h.fails(sh(strings.Repeat("x", 200<<10), map[string]any{"op": "exec", "env": env}), codeExecFailed)
	if pid := h.agent.spares.claimablePid(); pid != spare {
		t.Fatalf("ready spare = %d, want the untouched %d", pid, spare)
	}
}

func TestWarmShellConcurrentExecs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(nil)
	spare := h.waitSpare(0)
	var pending []<-chan message
	for i := 0; i < 4; i++ {
		req := sh("echo "+itoa(i), nil)
		req["op"] = "exec"
		pending = append(pending, h.start(req))
	}
	var pids []int
	want := map[int]string{}
	for i, ch := range pending {
		m := h.wait(ch)
		var res struct{ Pid int }
		if !m.OK || json.Unmarshal(m.Result, &res) != nil {
			t.Fatalf("exec %d: %+v", i, m)
		}
		pids = append(pids, res.Pid)
		want[res.Pid] = itoa(i) + "\n"
	}
	if !slices.Contains(pids, spare) || len(want) != len(pids) {
		t.Fatalf("pids %v, spare %d", pids, spare)
	}
	for pid, r := range h.collectAll(pids...) {
		if r != (result{stdout: want[pid]}) {
			t.Errorf("pid %d: %+v, want stdout %q", pid, r, want[pid])
		}
	}
}

func TestWarmShellReplacedAfterDyingHidden(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(nil)
	first := h.waitSpare(0)
	syscall.Kill(-first, syscall.SIGKILL)
	second := h.waitSpare(first)
	syscall.Kill(second, syscall.SIGKILL) // the shell only, not its group
	third := h.waitSpare(second)
	eventually(t, "the dead spares' groups are gone", func() bool { return groupGone(first) && groupGone(second) })
	h.quiet(100 * time.Millisecond) // no exit events for hidden spares
	for _, e := range h.ps() {
		if e.Pid == first || e.Pid == second || e.Pid == third {
			t.Fatalf("ps shows a spare: %+v", e)
		}
	}
	if r := h.warmExec("echo fresh", nil); r.stdout != "fresh\n" {
		t.Fatalf("result = %+v", r)
	}
}

func TestWarmShellReprewarm(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(map[string]string{"V": "1"})
	first := h.waitSpare(0)
	h.prewarm(map[string]string{"V": "2"})
	second := h.waitSpare(first)
	eventually(t, "the old spare is killed", func() bool { return groupGone(first) })
	// The same profile again keeps the spare.
	h.prewarm(map[string]string{"V": "2"})
	time.Sleep(50 * time.Millisecond)
	if pid := h.agent.spares.claimablePid(); pid != second {
		t.Fatalf("same profile: ready spare %d, want %d", pid, second)
	}
	if r := h.warmExec(`echo "$V"`, map[string]string{"V": "2"}); r.stdout != "2\n" {
		t.Fatalf("result = %+v", r)
	}
	third := h.waitSpare(second)
	pid := h.exec(sh(`echo "$V"`, map[string]any{"env": map[string]string{"V": "1"}}))
	if r := h.collect(pid); pid == third || r.stdout != "1\n" {
		t.Fatalf("old profile: pid %d (spare %d), result %+v", pid, third, r)
	}
}

func TestWarmShellSignal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(nil)
	spare := h.waitSpare(0)
	pid := h.exec(sh("sleep 100; echo never", nil))
	if pid != spare {
		t.Fatalf("exec got pid %d, not the spare %d", pid, spare)
	}
	eventually(t, "sleep runs", func() bool { return len(groupMembers(t, pid)) >= 2 })
	if e := h.psEntry(pid); !e.Running || e.Cmd[2] != "sleep 100; echo never" {
		t.Fatalf("ps entry = %+v", e)
	}
	h.ok(map[string]any{"op": "signal", "pid": pid, "signal": "SIGKILL"}, nil)
	if r := h.collect(pid); r != (result{code: 137, signal: "SIGKILL"}) {
		t.Fatalf("result = %+v", r)
	}
	eventually(t, "the whole group is gone", func() bool { return groupGone(pid) })
}

// Flow control starts with the request's window, as for a new process.
func TestWarmShellCredit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(nil)
	spare := h.waitSpare(0)
	pid := h.exec(sh("head -c 100000 /dev/zero", map[string]any{"window": 0}))
	if pid != spare {
		t.Fatalf("exec got pid %d, not the spare %d", pid, spare)
	}
	if n := h.outBytes(pid, 300*time.Millisecond); n != 0 {
		t.Fatalf("received %d bytes with a window of 0", n)
	}
	h.send(`{"op":"ack","pid":` + itoa(pid) + `,"bytes":10000}`)
	if n := h.outBytes(pid, 300*time.Millisecond); n != 10000 {
		t.Fatalf("received %d bytes after acking 10000", n)
	}
	h.send(`{"op":"ack","pid":` + itoa(pid) + `,"bytes":1000000}`)
	if r := h.collect(pid); len(r.stdout) != 90000 || r.code != 0 {
		t.Fatalf("rest: %d bytes, code %d", len(r.stdout), r.code)
	}
}

func TestWarmShellUser(t *testing.T) {
	t.Parallel()
	if _, err := lookupUser("nobody"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and a nobody user")
	}
	h := newHarness(t)
	h.ok(map[string]any{"op": "prewarm", "user": "nobody"}, nil)
	spare := h.waitSpare(0)
	pid := h.exec(sh(`id -u; pwd; echo "$HOME $USER"`, map[string]any{"user": "nobody"}))
	if r := h.collect(pid); pid != spare || r.stdout != "65534\n/\n/nonexistent nobody\n" {
		t.Fatalf("pid %d (spare %d): %+v", pid, spare, r)
	}
	if e := h.psEntry(pid); e.User != "nobody" || e.Cwd != "/" {
		t.Fatalf("ps entry = %+v", e)
	}
}

// Back to back, an exec that arrives while the next spare is being started
// waits for it.
func TestWarmShellClaimedWhileStarting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(nil)
	h.waitSpare(0)
	claims := 0
	for i := 0; i < 10; i++ {
		pid := h.exec(sh(`tr '\0' ' ' </proc/$$/cmdline`, nil))
		r := h.collect(pid)
		if !strings.HasPrefix(r.stdout, "/bin/sh -c ") || r.code != 0 {
			t.Fatalf("result = %+v", r)
		}
		if strings.HasSuffix(r.stdout, ". /dev/fd/3 ") {
			claims++
		}
	}
	if claims < 2 {
		t.Fatalf("%d of 10 back-to-back execs used a spare", claims)
	}
	t.Logf("%d of 10 back-to-back execs used a spare", claims)
}

// The first command after a prewarm (a create's) waits for the new spare to
// say it started rather than forking a shell of its own beside it.
func TestWarmShellFirstExecAfterPrewarm(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	claims := 0
	for i := 0; i < 5; i++ {
		env := map[string]string{"ROUND": strconv.Itoa(i)} // a new profile: a new spare
		h.prewarm(env)
		pid := h.exec(sh(`tr '\0' ' ' </proc/$$/cmdline`, map[string]any{"env": env}))
		if r := h.collect(pid); strings.HasSuffix(r.stdout, ". /dev/fd/3 ") {
			claims++
		} else if !strings.HasPrefix(r.stdout, "/bin/sh -c ") || r.code != 0 {
			t.Fatalf("result = %+v", r)
		}
	}
	// A spare starts in a few ms here; a loaded machine may let one exec in
	// five give up after spareSettle and start its own shell.
	if claims < 4 {
		t.Fatalf("%d of 5 first execs after a prewarm used the spare", claims)
	}
}

// A shell that cannot start in this sandbox is never given a command: young
// spares are not claimed until one has lived spareSettle.
func TestWarmShellDyingYoungIsNotClaimed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.agent.spares.script = func() (string, error) { return "exit 3", nil }
	h.prewarm(nil)
	for start := time.Now(); time.Since(start) < 500*time.Millisecond; {
		if r := h.collect(h.exec(sh("echo ok", nil))); r != (result{stdout: "ok\n"}) {
			t.Fatalf("result = %+v", r)
		}
	}
	h.agent.spares.mu.Lock()
	failures := h.agent.spares.failures
	h.agent.spares.mu.Unlock()
	if failures < 2 || failures > 4 { // 100 + 200 ms of backoff, then 400 ms
		t.Fatalf("%d spares failed in 500 ms", failures)
	}
}

// A spare started under an account that has changed since is not used.
func TestWarmShellStale(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prewarm(nil)
	spare := h.waitSpare(0)
	acct, err := lookupUser("root")
	if err != nil {
		t.Fatal(err)
	}
	env, _ := buildEnv(nil, acct)
	req := &request{Cmd: []string{"/bin/sh", "-c", "true"}}
	if sp := h.agent.spares.take(req, "root", env, "/elsewhere", acct); sp != nil {
		t.Fatal("a stale spare was handed out")
	}
	h.waitSpare(spare)
	eventually(t, "the stale spare is killed", func() bool { return groupGone(spare) })
}

func TestPrewarmErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fails(map[string]any{"op": "prewarm", "user": "no-such-user"}, codeInvalidArgument)
	h.fails(map[string]any{"op": "prewarm", "env": map[string]string{"A=B": "c"}}, codeInvalidArgument)
	if pid := h.agent.spares.claimablePid(); pid != 0 {
		t.Fatalf("spare %d started for an invalid profile", pid)
	}
}

// TestWarmShellLatency measures exec -> exit of `echo hi` with and without a
// spare: commands spaced out (the spare has had time to get ready), and back
// to back. Run with STASIS_AGENT_BENCH=1 go test -run WarmShellLatency -v.
func TestWarmShellLatency(t *testing.T) {
	if os.Getenv("STASIS_AGENT_BENCH") == "" {
		t.Skip("set STASIS_AGENT_BENCH=1 to measure")
	}
	const runs = 50
	measure := func(h *harness, pause time.Duration) time.Duration {
		var times []time.Duration
		for i := 0; i < runs; i++ {
			time.Sleep(pause)
			start := time.Now()
			pid := h.exec(sh("echo hi", nil))
			if r := h.collect(pid); r.stdout != "hi\n" {
				t.Fatalf("result = %+v", r)
			}
			times = append(times, time.Since(start))
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		return times[len(times)/2]
	}
	h := newHarness(t)
	normal, normalBack := measure(h, 200*time.Millisecond), measure(h, 0)
	h.prewarm(nil)
	warm, warmBack := measure(h, 200*time.Millisecond), measure(h, 0)
	t.Logf("median exec->exit of `echo hi` over %d runs: spaced 200 ms apart: normal %v, warm %v; back to back: normal %v, warm %v",
		runs, normal, warm, normalBack, warmBack)
}
