package main

import (
	"strings"
	"testing"
	"time"
)

// readUntil collects pid's terminal output until it contains want.
func (h *harness) readUntil(pid int, want string) string {
	h.t.Helper()
	var got strings.Builder
	deadline := time.After(waitLimit)
	for !strings.Contains(got.String(), want) {
		select {
		case ev := <-h.events:
			if ev.Ev == "out" && ev.Pid == pid {
				if ev.Fd != 1 {
					h.t.Fatalf("terminal output on fd %d", ev.Fd)
				}
				got.Write(ev.Data)
			} else if ev.Ev == "exit" {
				h.t.Fatalf("exited (%d) before %q; output %q", ev.Code, want, got.String())
			}
		case <-deadline:
			h.t.Fatalf("no %q in terminal output %q", want, got.String())
		}
	}
	return got.String()
}

func TestPtyShellEchoResizeAndExit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"sh", "-i"}, "pty": map[string]int{"cols": 100, "rows": 30},
		"env": map[string]string{"PS1": "$ "}, "subscribe": true, "stdin": true})
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("tty; echo $TERM; stty size; echo $((6*7))\n")}, nil)
	out := h.readUntil(pid, "42\r\n")
	for _, want := range []string{"/dev/pts/", "xterm-256color", "30 100"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output %q lacks %q", out, want)
		}
	}
	h.ok(map[string]any{"op": "resize", "pid": pid, "cols": 132, "rows": 43}, nil)
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("stty size\n")}, nil)
	h.readUntil(pid, "43 132")
	h.fails(map[string]any{"op": "resize", "pid": pid, "cols": 0, "rows": 43}, codeInvalidArgument)
	h.fails(map[string]any{"op": "stdin", "pid": pid, "eof": true}, codeInvalidArgument)
	// Ctrl-D at the prompt ends the shell with its own exit status.
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("(exit 3)\n")}, nil)
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("\x04")}, nil)
	for {
		ev := h.event()
		if ev.Ev == "exit" {
			if ev.Pid != pid || ev.Code != 3 {
				t.Fatalf("exit = %+v, want code 3", ev)
			}
			break
		}
	}
}

func TestPtyReplayAfterReattach(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"sh", "-c", "echo before; read x; echo got $x"},
		"pty": map[string]int{"cols": 80, "rows": 24}, "subscribe": false, "stdin": true})
	eventually(t, "output in the ring", func() bool {
		h.ok(map[string]any{"op": "attach", "pid": pid, "replay": true}, nil)
		select {
		case ev := <-h.events:
			return ev.Ev == "out" && strings.Contains(string(ev.Data), "before")
		case <-time.After(200 * time.Millisecond):
			h.ok(map[string]any{"op": "detach", "pid": pid}, nil)
			return false
		}
	})
	h.ok(map[string]any{"op": "stdin", "pid": pid, "data": []byte("yes\n")}, nil)
	h.readUntil(pid, "got yes")
	h.fails(map[string]any{"op": "resize", "pid": 999999999, "cols": 10, "rows": 10}, codeNoSuchProcess)
	plain := h.exec(map[string]any{"cmd": []string{"true"}})
	h.fails(map[string]any{"op": "resize", "pid": plain, "cols": 10, "rows": 10}, codeInvalidArgument)
}

// A terminal's output is held to the credit window like a pipe's: a flood
// blocks the process, not the agent, until the daemon acks.
func TestPtyCreditFlowControl(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const window = 65536
	pid := h.exec(map[string]any{"cmd": []string{"sh", "-c", "stty raw -echo; exec yes"}, "pty": map[string]int{"cols": 80, "rows": 24},
		"subscribe": true, "window": window})
	got := h.outBytes(pid, 300*time.Millisecond)
	if got < window || got > window+readChunk {
		t.Fatalf("received %d bytes with a window of %d", got, window)
	}
	h.send(`{"op":"ack","pid":` + itoa(pid) + `,"bytes":100000}`)
	if n := h.outBytes(pid, 300*time.Millisecond); n < 100000 || n > 100000+readChunk {
		t.Fatalf("after acking 100000 bytes, received %d more", n)
	}
	h.ok(map[string]any{"op": "signal", "pid": pid, "signal": "SIGKILL"}, nil)
}
