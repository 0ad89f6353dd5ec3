package main

import (
	"encoding/json"
	"errors"
	"os"
	"syscall"
)

// Process ops other than exec.

func (a *Agent) attach(c *call, req *request) (any, error) {
	p, err := a.procs.get(req.Pid)
	if err != nil {
		return nil, err
	}
	window := int64(defaultWindow)
	if req.Window != nil {
		if *req.Window < 0 {
			return nil, errorf(codeInvalidArgument, "window must not be negative")
		}
		window = *req.Window
	}
	p.attach(window, req.Replay, func(running bool) {
		c.finish(struct {
			Pid     int  `json:"pid"`
			Running bool `json:"running"`
		}{p.pid, running}, nil)
	})
	return nil, nil
}

func (a *Agent) detach(c *call, req *request) (any, error) {
	p, err := a.procs.get(req.Pid)
	if err != nil {
		return nil, err
	}
	p.detach()
	return empty{}, nil
}

// ack is fire-and-forget: errors are only logged.
func (a *Agent) ack(c *call, req *request) (any, error) {
	if req.Bytes < 0 {
		return nil, errorf(codeInvalidArgument, "bytes must not be negative")
	}
	p, err := a.procs.get(req.Pid)
	if err != nil {
		return nil, err
	}
	p.addCredit(req.Bytes)
	return nil, nil
}

func (a *Agent) writeStdin(c *call, req *request) (any, error) {
	p, err := a.procs.get(req.Pid)
	if err != nil {
		return nil, err
	}
	if p.stdin == nil {
		return nil, errorf(codeInvalidArgument, "process %d was started without stdin", p.pid)
	}
	if req.EOF && p.pty != nil {
		return nil, errorf(codeInvalidArgument, "a terminal has no end of input: send Ctrl-D (0x04)")
	}
	if limit := req.dataLimit(); int64(len(req.Data)) > limit {
		return nil, errorf(codeTooLarge, "data exceeds %d bytes", limit)
	}
	// The pipe is non-blocking underneath: a process that does not read
	// parks only this goroutine. Closing it on exit fails a pending write.
	if len(req.Data) > 0 {
		if _, err := p.stdin.Write(req.Data); err != nil {
			return nil, stdinError(p.pid, err)
		}
	}
	if req.EOF {
		if err := p.stdin.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			return nil, errorf(codeIOError, "closing stdin: %v", err)
		}
	}
	return empty{}, nil
}

// stdinError reports a write to a stdin that was closed (by an earlier eof, or
// when the process exited) or whose reader is gone (EPIPE) as stdin_closed:
// the caller's mistake or the process's choice, not an agent failure.
func stdinError(pid int, err error) error {
	if errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EPIPE) {
		return errorf(codeStdinClosed, "process %d's stdin is closed", pid)
	}
	return errorf(codeIOError, "writing stdin: %v", err)
}

func (a *Agent) signal(c *call, req *request) (any, error) {
	p, err := a.procs.get(req.Pid)
	if err != nil {
		return nil, err
	}
	sig, err := parseSignal(string(req.Signal))
	if err != nil {
		return nil, errorf(codeInvalidArgument, "%v", err)
	}
	// The process leads its own group (Setpgid), so -pid reaches it and
	// everything it started. The group id stays reserved while any member
	// lives, so this is safe even after the leader has exited.
	switch err := syscall.Kill(-p.pid, sig); err {
	case nil:
		return empty{}, nil
	case syscall.ESRCH:
		return nil, errorf(codeNoSuchProcess, "process group %d has no live processes", p.pid)
	case syscall.EPERM:
		return nil, errorf(codePermissionDenied, "kill: %v", err)
	default:
		return nil, errorf(codeIOError, "kill: %v", err)
	}
}

// Bounds of a ps reply, so that it always fits in one message (maxLineSize):
// each entry's command line, cwd and tag are cut to psFieldBytes, and entries
// stop at psReplyBytes, with "truncated" set.
const (
	psFieldBytes = 8 << 10
	psReplyBytes = 2 << 20
)

func (a *Agent) ps(c *call, req *request) (any, error) {
	entries := []psEntry{}
	size, truncated := 0, false
	for _, p := range a.procs.list() {
		e := p.info()
		cut := boundEntry(&e)
		n := encodedSize(e)
		if size+n > psReplyBytes {
			truncated = true
			break
		}
		size += n
		truncated = truncated || cut
		entries = append(entries, e)
	}
	return struct {
		Processes []psEntry `json:"processes"`
		Truncated bool      `json:"truncated"`
	}{entries, truncated}, nil
}

// boundEntry cuts e's variable-length fields to psFieldBytes; it reports
// whether it cut anything.
func boundEntry(e *psEntry) bool {
	cut := false
	budget := psFieldBytes
	for i, arg := range e.Cmd {
		if len(arg) > budget {
			e.Cmd = append(append([]string{}, e.Cmd[:i]...), arg[:budget])
			cut = true
			break
		}
		budget -= len(arg)
	}
	for _, f := range []*string{&e.Cwd, &e.Tag, &e.User} {
		if len(*f) > psFieldBytes {
			*f, cut = (*f)[:psFieldBytes], true
		}
	}
	return cut
}

// encodedSize is the length of v in JSON (escaping can make a string up to
// six times longer than its bytes), or a huge number if it cannot be encoded.
func encodedSize(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return maxLineSize
	}
	return len(b)
}
