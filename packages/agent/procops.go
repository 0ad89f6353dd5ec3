package main

import (
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
	if limit := req.dataLimit(); int64(len(req.Data)) > limit {
		return nil, errorf(codeTooLarge, "data exceeds %d bytes", limit)
	}
	// The pipe is non-blocking underneath: a process that does not read
	// parks only this goroutine. Closing it on exit fails a pending write.
	if len(req.Data) > 0 {
		if _, err := p.stdin.Write(req.Data); err != nil {
			return nil, errorf(codeIOError, "writing stdin: %v", err)
		}
	}
	if req.EOF {
		if err := p.stdin.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			return nil, errorf(codeIOError, "closing stdin: %v", err)
		}
	}
	return empty{}, nil
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

func (a *Agent) ps(c *call, req *request) (any, error) {
	procs := a.procs.list()
	entries := make([]psEntry, len(procs))
	for i, p := range procs {
		entries[i] = p.info()
	}
	return struct {
		Processes []psEntry `json:"processes"`
	}{entries}, nil
}
