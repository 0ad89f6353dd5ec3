package main

import (
	"io"
	"maps"
	"slices"
	"time"
)

// Handing the spare shell to an exec (see spare.go).

// claimableLocked says whether the ready spare may be claimed now.
func (s *spareShells) claimableLocked() bool {
	if s.ready != nil && !s.healthy && s.ready.startedProperly() {
		s.healthy, s.failures = true, 0
	}
	return s.ready != nil && s.healthy
}

// take hands out the spare if req may use it: req is exactly
// ["/bin/sh","-c",X] with the profile's env and user, no cwd and no stdin,
// and exec would start it with the same env, cwd and credentials as the
// spare. The caller must then claim it. While a spare is being started, or a
// new one has not yet said it started, take waits for it (at most
// spareSettle): the normal path would be slower, as its fork would first wait
// for that one (the reaper's lock) and then take as long again. The first
// command after a create meets exactly this.
func (s *spareShells) take(req *request, userSpec string, env []string, cwd string, acct *account) *spare {
	if len(req.Cmd) != 3 || req.Cmd[0] != warmShell || req.Cmd[1] != "-c" ||
		len(req.Cmd[2]) > maxWarmCommand || req.Stdin || req.Cwd != "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(spareSettle)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if s.profile == nil || userSpec != s.profile.user || !maps.Equal(req.Env, s.profile.env) {
			return nil
		}
		if s.claimableLocked() {
			break
		}
		starting := s.filling && !time.Now().Before(s.retryAt)
		if !(starting || s.ready != nil) || !time.Now().Before(deadline) {
			return nil
		}
		if timer == nil {
			timer = time.AfterFunc(time.Until(deadline), func() {
				s.mu.Lock()
				s.started.Broadcast()
				s.mu.Unlock()
			})
		}
		s.started.Wait()
	}
	sp := s.ready
	s.ready = nil
	if !slices.Equal(sp.env, env) || sp.cwd != cwd || sp.acct.uid != acct.uid ||
		sp.acct.gid != acct.gid || !slices.Equal(sp.acct.groups, acct.groups) {
		sp.discard() // stale: the user's account or home changed since it started
		s.fillLocked()
		return nil
	}
	return sp
}

// claim turns the spare into the process of the exec request and replies,
// unless the spare has died meanwhile (then the caller takes the normal
// path). From the reply on, the process is handled exactly like one that
// exec started.
func (a *Agent) claim(c *call, req *request, sp *spare, window int64) bool {
	sp.mu.Lock()
	ok := !sp.dead
	sp.claimed = ok
	sp.mu.Unlock()
	if !ok {
		a.spares.mu.Lock()
		a.spares.diedLocked(sp)
		a.spares.fillLocked()
		a.spares.mu.Unlock()
		return false
	}

	p := sp.p
	p.cmd, p.tag, p.started = req.Cmd, req.Tag, time.Now()
	p.subscribed, p.credit = req.Subscribe, window
	a.procs.reveal(p)
	c.finish(struct {
		Pid int `json:"pid"`
	}{p.pid}, nil)
	p.run(func(p *process) {
		sp.script.Close() // unblocks a delivery the shell never read
		a.procs.retire(p)
	})
	go sp.deliver(req.Cmd[2])
	time.AfterFunc(refillDelay, a.spares.refill) // unless watch does it sooner
	return true
}

// deliver writes the command to the shell's fd 3 and closes it. It has a
// goroutine of its own: a command larger than the pipe buffer blocks until
// the shell has read it.
func (sp *spare) deliver(cmd string) {
	// An error means the shell is gone; its exit event reports that.
	io.WriteString(sp.script, warmPrefix+cmd)
	sp.script.Close()
}

// claimablePid returns the pid of the spare that a matching exec would
// claim now, or 0 (for tests).
func (s *spareShells) claimablePid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.claimableLocked() {
		return 0
	}
	return s.ready.p.pid
}
