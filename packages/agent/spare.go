package main

import (
	"log"
	"maps"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Warm shell. Under gVisor creating a process costs ~15 ms, and most API
// commands are `exec ["/bin/sh","-c",X]`, so for a shell builtin the spawn of
// sh is the whole cost. After `prewarm`, the agent keeps one spare shell
// started ahead of time (the same way exec would start it, but hidden) that
// waits for its command on fd 3. A matching exec claims it: the agent writes X
// to fd 3 and the shell runs it, with no process created on the request's
// critical path. Another spare is then started in the background.
//
// The spare runs `. /dev/fd/3` rather than `eval "$(cat <&3)"`: the shell
// reads the pipe itself, so no cat has to be forked (and then exit) per
// command, which under gVisor costs about as much as the spawn saved. Before
// that it writes a line to fd 4 (a builtin, no process): the sign that it has
// started, so a new spare can be claimed as soon as it gives it.

const (
	warmShell = "/bin/sh"
	// warmPrefix goes before the command, on its first line so that line
	// numbers in messages match `sh -c X`: the shell reads the command through
	// a descriptor of its own, and X's processes must not inherit fd 3.
	warmPrefix = "exec 3<&-; "
	// A longer -c argument would fail to exec (E2BIG, MAX_ARG_STRLEN) on the
	// normal path; such commands keep that behaviour.
	maxWarmCommand = 128<<10 - 1
	spareRetryMin  = 100 * time.Millisecond
	spareRetryMax  = 30 * time.Second
	// A spare that has lived this long, or has said it started (fd 4), has
	// started properly. Until one has, after a prewarm or after a spare died
	// young, a spare must show either before it is claimed, so that a shell
	// that cannot start in this sandbox fails on its own rather than as the
	// user's command. An exec waits at most this long for a spare.
	spareSettle = 100 * time.Millisecond
	// After a claim, the next spare is started once the claimed process has
	// exited, or after refillDelay if it runs longer. Starting it at once
	// would delay the claimed command: a fork holds the reaper's lock (~15 ms
	// under gVisor), so its exit could not be reaped meanwhile.
	refillDelay = 100 * time.Millisecond
)

// warmScript is the spare's -c argument: source the command from fd 3, by
// /dev/fd when the sandbox has it (shorter in the shell's messages).
func warmScript() (string, error) {
	for _, dir := range []string{"/dev/fd", "/proc/self/fd"} {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return "echo >&4; exec 4>&-; . " + dir + "/3", nil
		}
	}
	return "", errorf(codeExecFailed, "neither /dev/fd nor /proc/self/fd exists")
}

// spareProfile is what prewarm configured: exec requests with exactly this
// env and user (and no cwd, no stdin) may claim the spare.
type spareProfile struct {
	env  map[string]string
	user string
}

// spare is one started, parked shell. Until it is claimed its output pipes
// are not read; then it runs like any process that exec started.
type spare struct {
	p      *process
	script *os.File // write end of the shell's fd 3
	born   time.Time
	// reaped receives its exit status from the reaper, for watch.
	reaped chan syscall.WaitStatus
	// alive is closed once the shell has said it started (a line on fd 4).
	alive chan struct{}
	// What it was started with; a claim also requires that exec would start
	// it the same way now (/etc/passwd or the home directory may change).
	env  []string
	cwd  string
	acct *account

	mu      sync.Mutex
	claimed bool
	dead    bool // exited before being claimed
}

// spareShells keeps at most one ready spare for the current profile.
type spareShells struct {
	a *Agent

	mu       sync.Mutex
	profile  *spareProfile
	gen      int // bumped by each new profile; a spare started for an older one is discarded
	ready    *spare
	healthy  bool      // a spare of this profile has lived spareSettle; young ones may be claimed
	filling  bool      // a fill goroutine is running
	started  sync.Cond // broadcast when fill has tried to start a spare
	failures int       // spares in a row that failed to start or died young, for backoff
	retryAt  time.Time
	wake     chan struct{} // tells a waiting fill goroutine to look again

	script func() (string, error) // warmScript; tests replace it
}

func newSpareShells(a *Agent) *spareShells {
	s := &spareShells{a: a, wake: make(chan struct{}, 1), script: warmScript}
	s.started.L = &s.mu
	return s
}

func (a *Agent) prewarm(c *call, req *request) (any, error) {
	userSpec, acct, err := requestUser(req.User)
	if err != nil {
		return nil, err
	}
	if _, err := buildEnv(req.Env, acct); err != nil {
		return nil, err
	}
	a.spares.configure(&spareProfile{env: maps.Clone(req.Env), user: userSpec})
	return empty{}, nil
}

// configure sets the profile. A different profile replaces the spare; the
// same one keeps it. Either way a pending retry is due at once.
func (s *spareShells) configure(prof *spareProfile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.profile == nil || s.profile.user != prof.user || !maps.Equal(s.profile.env, prof.env) {
		s.profile = prof
		s.gen++
		s.healthy = false
		if s.ready != nil {
			s.ready.discard()
			s.ready = nil
		}
	}
	s.failures, s.retryAt = 0, time.Time{}
	s.fillLocked()
}

// refill makes sure a spare is ready or on its way.
func (s *spareShells) refill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fillLocked()
}

// fillLocked makes sure a fill goroutine runs, so that spares are always
// started off the request path.
func (s *spareShells) fillLocked() {
	if !s.filling {
		s.filling = true
		go s.fill()
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// fill starts spares until one for the current profile is ready, waiting
// out the backoff after failures.
func (s *spareShells) fill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.profile != nil && s.ready == nil {
		if wait := time.Until(s.retryAt); wait > 0 {
			s.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.wake:
			}
			t.Stop()
			s.mu.Lock()
			continue
		}
		prof, gen := s.profile, s.gen
		s.mu.Unlock()
		sp, err := s.start(prof)
		s.mu.Lock()
		switch {
		case err != nil:
			log.Printf("cannot start a warm shell: %v (retrying in %v)", err, s.failedLocked())
		case gen != s.gen:
			sp.discard() // prewarm changed the profile meanwhile
		default:
			s.ready = sp
		}
		s.started.Broadcast()
	}
	s.filling = false
}

// failedLocked records a failure and returns the delay before the next try.
func (s *spareShells) failedLocked() time.Duration {
	s.failures++
	delay := spareRetryMax
	if s.failures <= 16 {
		delay = min(spareRetryMin<<(s.failures-1), spareRetryMax)
	}
	s.retryAt = time.Now().Add(delay)
	return delay
}

// start spawns a hidden spare for prof exactly as exec would start a process
// with its env and user and no cwd, plus the command pipe as fd 3.
func (s *spareShells) start(prof *spareProfile) (*spare, error) {
	acct, err := lookupUser(prof.user)
	if err != nil {
		return nil, err
	}
	env, err := buildEnv(prof.env, acct)
	if err != nil {
		return nil, err
	}
	script, err := s.script()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	startedR, startedW, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	// The shell reopens the pipe through /dev/fd, which checks the pipe's
	// owner and mode (0600): it must belong to the user.
	if cred := credentialFor(acct); cred != nil {
		if err := r.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			closeAll([]*os.File{r, w, startedR, startedW})
			return nil, err
		}
	}
	p := newProcess(s.a.out)
	p.cmd = []string{warmShell, "-c", script}
	p.cwd, p.user = defaultCwd(acct), prof.user
	if err := spawn(p, warmShell, env, credentialFor(acct), false, r, startedW); err != nil {
		w.Close()
		startedR.Close()
		return nil, err
	}
	sp := &spare{p: p, script: w, born: p.started, reaped: p.status, alive: make(chan struct{}), env: env, cwd: p.cwd, acct: acct}
	go s.awaitStarted(sp, startedR)
	// The reaper reports to sp.reaped; watch passes the status on to the
	// process's own wait once the spare is claimed.
	p.status = make(chan syscall.WaitStatus, 1)
	s.a.procs.addHidden(p)
	go s.watch(sp)
	return sp, nil
}

// awaitStarted marks the spare alive when its shell writes to fd 4 (EOF: it
// ended first) and wakes execs waiting for it.
func (s *spareShells) awaitStarted(sp *spare, started *os.File) {
	defer started.Close()
	var b [1]byte
	if n, _ := started.Read(b[:]); n == 1 {
		close(sp.alive)
	}
	s.mu.Lock()
	s.started.Broadcast()
	s.mu.Unlock()
}

// startedProperly: the shell said it started, or has lived spareSettle.
func (sp *spare) startedProperly() bool {
	select {
	case <-sp.alive:
		return true
	default:
		return time.Since(sp.born) >= spareSettle
	}
}

// watch waits for the spare's exit. A spare that dies hidden (killed from
// inside the sandbox, say) produces no event; it is forgotten and, if it was
// the ready one, replaced after a backoff. A claimed one has its next spare
// started now that the fork can no longer delay its exit.
func (s *spareShells) watch(sp *spare) {
	ws := <-sp.reaped
	sp.mu.Lock()
	claimed := sp.claimed
	sp.dead = !claimed
	sp.mu.Unlock()
	if claimed {
		s.refill()
		sp.p.status <- ws
		return
	}
	sp.script.Close()
	closeAll(sp.p.pipes[:])
	s.a.procs.dropHidden(sp.p)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == sp {
		s.ready = nil
		s.started.Broadcast() // an exec waiting for it takes the normal path
		s.diedLocked(sp)
		how := "exit " + strconv.Itoa(ws.ExitStatus())
		if ws.Signaled() {
			how = signalName(ws.Signal())
		}
		log.Printf("warm shell %d ended while idle (%s); starting another in %v",
			sp.p.pid, how, time.Until(s.retryAt).Round(time.Millisecond))
		s.fillLocked()
	}
}

// diedLocked accounts for a spare that died unclaimed: one that died young
// may not have been able to start at all.
func (s *spareShells) diedLocked(sp *spare) {
	if sp.startedProperly() {
		s.failures = 0
	} else {
		s.healthy = false
	}
	s.failedLocked()
}

// discard kills a spare that is no longer wanted; watch cleans up after it.
// It runs in the background, as killGroup may wait for a concurrent fork.
func (sp *spare) discard() {
	go func() {
		children.killGroup(sp.p.pid, syscall.SIGKILL)
		sp.script.Close()
	}()
}
