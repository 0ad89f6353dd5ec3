package main

import (
	"io"
	"log"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Warm shell. Under gVisor creating a process costs ~15 ms, and most API
// commands are `exec ["/bin/sh","-c",X]`, so for a shell builtin the spawn of
// sh is the whole cost. After `prewarm`, the agent keeps one spare shell
// started ahead of time (the same way exec would start it, but hidden) that
// waits for its command on fd 3. A matching exec claims it: the agent writes X
// to fd 3 and the shell evals it, with no process created on the request's
// critical path. A new spare is then started in the background.

const (
	warmShell = "/bin/sh"
	// warmEnd follows the command on fd 3: a command that arrives without it
	// was cut short (its cat was killed), and must fail loudly rather than
	// run in part or, worse, silently succeed as an empty command.
	warmEnd = "STASIS_WARM_END"
	// A longer -c argument would fail to exec (E2BIG, MAX_ARG_STRLEN) on the
	// normal path; such commands keep that behaviour.
	maxWarmCommand = 128<<10 - 1
	spareRetryMin  = 100 * time.Millisecond
	spareRetryMax  = 30 * time.Second
	// After a claim, the next spare is started once the claimed process has
	// finished, or after refillDelay if it runs longer. Starting it at once
	// would delay the claimed command: a fork holds the reaper's lock (~15 ms
	// under gVisor), so its exit could not be reaped meanwhile.
	refillDelay = 100 * time.Millisecond
)

// warmScript is the spare's -c argument. The shell waits in cat (found by
// the agent, so the profile's PATH does not matter) until the agent has
// written the command and closed the pipe. The command goes through a
// positional parameter (not a variable, which X could see or clobber), which
// is shifted away before X runs, so X sees $0 = /bin/sh and no arguments as
// with `sh -c X`; fd 3 is closed so X's processes do not inherit it. The
// marker also keeps trailing newlines of X, which $(...) would strip.
func warmScript(cat string) string {
	return `set -- "$('` + cat + `' <&3)"; exec 3<&-; ` +
		`case $1 in *` + warmEnd + `) ;; *) echo "stasis-agent: the warm shell lost its command" >&2; exit 126;; esac; ` +
		`eval 'shift;' "${1%` + warmEnd + `}"`
}

// spareProfile is what prewarm configured: exec requests with exactly this
// env and user (and no cwd, no stdin) may claim the spare.
type spareProfile struct {
	env  map[string]string
	user string
}

// spare is one started, parked shell. Its output pipes are not read and its
// exit is watched by watch until it is claimed; then the process runs like
// any exec'd one.
type spare struct {
	p      *process
	script *os.File // write end of the shell's fd 3
	// What it was started with; a claim also requires that exec would start
	// it the same way now (/etc/passwd or the home directory may change).
	env  []string
	cwd  string
	acct *account

	mu      sync.Mutex
	claimed bool
	dead    bool          // exited before being claimed
	claimCh chan struct{} // closed when claimed, to stop watch
}

// spareShells keeps at most one ready spare for the current profile.
type spareShells struct {
	a *Agent

	mu       sync.Mutex
	profile  *spareProfile
	gen      int // bumped by each new profile; a spare started for an older one is discarded
	ready    *spare
	filling  bool // a fill goroutine is running
	failures int  // consecutive failed or prematurely dead spares, for backoff
	retryAt  time.Time
	wake     chan struct{} // tells a waiting fill goroutine to look again
}

func (a *Agent) prewarm(c *call, req *request) (any, error) {
	userSpec := string(req.User)
	if userSpec == "" {
		userSpec = "root"
	}
	acct, err := lookupUser(userSpec)
	if err != nil {
		return nil, errorf(codeInvalidArgument, "%v", err)
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
		if s.ready != nil {
			s.ready.discard()
			s.ready = nil
		}
	}
	s.failures, s.retryAt = 0, time.Time{}
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
	cat, err := lookPath("cat", defaultPath)
	if err != nil {
		return nil, err
	}
	if strings.ContainsRune(cat, '\'') {
		return nil, errorf(codeExecFailed, "unusable path %q", cat)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p := newProcess(s.a.out)
	p.cmd = []string{warmShell, "-c", warmScript(cat)}
	p.cwd, p.user = defaultCwd(acct), prof.user
	if err := spawn(p, warmShell, env, credentialFor(acct), false, r); err != nil {
		w.Close()
		return nil, err
	}
	sp := &spare{p: p, script: w, env: env, cwd: p.cwd, acct: acct, claimCh: make(chan struct{})}
	s.a.procs.addHidden(p)
	go s.watch(sp)
	return sp, nil
}

// watch waits for the spare's exit until it is claimed. A spare that dies
// hidden (killed from inside the sandbox, say) produces no event; it is
// forgotten and, if it was the ready one, replaced after a backoff.
func (s *spareShells) watch(sp *spare) {
	var ws syscall.WaitStatus
	select {
	case ws = <-sp.p.status:
	case <-sp.claimCh:
		return
	}
	sp.mu.Lock()
	if sp.claimed {
		// Claimed just as it died: its own wait reports the exit.
		sp.p.status <- ws
		sp.mu.Unlock()
		return
	}
	sp.dead = true
	sp.mu.Unlock()
	// Closing fd 3's write end also ends a cat that outlived its shell.
	sp.script.Close()
	closeAll(sp.p.pipes[:])
	s.a.procs.dropHidden(sp.p)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == sp {
		s.ready = nil
		how := "exit " + strconv.Itoa(ws.ExitStatus())
		if ws.Signaled() {
			how = signalName(ws.Signal())
		}
		log.Printf("warm shell %d ended while idle (%s); starting another in %v", sp.p.pid, how, s.failedLocked())
		s.fillLocked()
	}
}

// discard kills a spare that is no longer wanted; watch cleans up after it.
// It runs in the background, as killGroup may wait for a concurrent fork.
func (sp *spare) discard() {
	go func() {
		children.killGroup(sp.p.pid, syscall.SIGKILL)
		sp.script.Close()
	}()
}

// take hands out the ready spare if req may use it: req is exactly
// ["/bin/sh","-c",X] with the profile's env and user, no cwd and no stdin,
// and exec would start it with the same env, cwd and credentials as the
// spare. The caller must then claim it.
func (s *spareShells) take(req *request, userSpec string, env []string, cwd string, acct *account) *spare {
	if len(req.Cmd) != 3 || req.Cmd[0] != warmShell || req.Cmd[1] != "-c" ||
		len(req.Cmd[2]) > maxWarmCommand || req.Stdin || req.Cwd != "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.ready
	if sp == nil || userSpec != s.profile.user || !maps.Equal(req.Env, s.profile.env) {
		return nil
	}
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
	if ok {
		sp.claimed = true
		close(sp.claimCh)
	}
	sp.mu.Unlock()

	s := a.spares
	if !ok {
		s.mu.Lock()
		s.failedLocked() // died unnoticed; do not replace spares in a loop
		s.fillLocked()
		s.mu.Unlock()
		return false
	}
	finished := make(chan struct{})
	go s.refillAfter(finished)

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
		close(finished)
	})
	go sp.deliver(req.Cmd[2])
	return true
}

// refillAfter starts the next spare once finished is closed or refillDelay
// has passed.
func (s *spareShells) refillAfter(finished <-chan struct{}) {
	t := time.NewTimer(refillDelay)
	select {
	case <-finished:
	case <-t.C:
	}
	t.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures, s.retryAt = 0, time.Time{} // the claim shows spares work
	s.fillLocked()
}

// deliver writes the command to the shell's fd 3 and closes it. It has a
// goroutine of its own: a command larger than the pipe buffer blocks until
// the shell's cat has read it.
func (sp *spare) deliver(cmd string) {
	// An error means the shell is gone; its exit event reports that.
	io.WriteString(sp.script, cmd+warmEnd)
	sp.script.Close()
}

// readyPid returns the pid of the ready spare, or 0 (for tests).
func (s *spareShells) readyPid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == nil {
		return 0
	}
	return s.ready.p.pid
}
