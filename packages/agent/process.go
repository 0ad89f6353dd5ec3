package main

import (
	"errors"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"
)

const (
	readChunk     = 32 << 10 // bytes per pipe read, so at most per live out event
	ringSize      = 1 << 20  // output kept per process for re-attaching
	drainTimeout  = 100 * time.Millisecond
	keepExited    = 128
	defaultWindow = 1 << 20
	maxCredit     = 1 << 50 // keeps repeated acks from overflowing
)

// process is one process started by exec, with its output state.
type process struct {
	pid     int
	cmd     []string
	tag     string
	cwd     string
	user    string
	started time.Time
	stdin   *os.File    // write end of its stdin pipe (or its terminal's master); nil unless requested
	pipes   [2]*os.File // read ends of its stdout and stderr; a terminal's master and nil (pty.go)
	pty     *os.File    // its terminal's master, when started with one
	status  chan syscall.WaitStatus
	out     *lineWriter

	mu         sync.Mutex
	changed    sync.Cond // broadcast when subscription, credit or drain state changes
	ring       ring
	subscribed bool
	credit     int64 // bytes of output the daemon accepts; may dip below zero
	running    bool
	exitCode   int
	exitSignal string // "" unless killed by a signal
	draining   bool   // exited: read what is left in the pipes regardless of credit
	finished   bool   // exit reported; later output goes to the ring only
}

func newProcess(out *lineWriter) *process {
	p := &process{
		out:     out,
		status:  make(chan syscall.WaitStatus, 1),
		ring:    newRing(ringSize),
		running: true,
		started: time.Now(),
	}
	p.changed.L = &p.mu
	return p
}

// run reads the process's output and reports its exit; onFinish is called
// once the exit has been reported.
func (p *process) run(onFinish func(*process)) {
	var drained sync.WaitGroup
	for i, f := range p.pipes {
		if f != nil {
			drained.Add(1)
			go p.pump(i+1, f, drained.Done)
		}
	}
	go p.wait(&drained, onFinish)
}

// pump copies one pipe into the ring and, while subscribed and within the
// credit, to the daemon. drained is called once the pipe has been read to EOF,
// or when the post-exit drain window has passed.
func (p *process) pump(fd int, f *os.File, drained func()) {
	defer f.Close()
	once := sync.OnceFunc(drained)
	defer once()
	buf := make([]byte, readChunk)
	for {
		n, err := f.Read(buf[:p.readQuota()])
		if n > 0 {
			p.output(fd, buf[:n])
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The process exited 100 ms ago but a background descendant
			// still holds the pipe. Report the exit now; keep reading into
			// the ring so the descendant never blocks or gets EPIPE.
			once()
			f.SetReadDeadline(time.Time{})
		default:
			return // EOF
		}
	}
}

// readQuota blocks while the daemon has no credit left for this process, and
// returns how many bytes the next read may take.
func (p *process) readQuota() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	limited := func() bool { return p.subscribed && !p.draining }
	for limited() && p.credit <= 0 {
		p.changed.Wait()
	}
	if limited() && p.credit < readChunk {
		return int(p.credit)
	}
	return readChunk
}

func (p *process) output(fd int, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ring.write(fd, data)
	if p.subscribed && !p.finished {
		p.credit -= int64(len(data))
		p.out.send(outEvent{Ev: "out", Pid: p.pid, Fd: fd, Data: data})
	}
}

// wait waits for the reaper's status, lets the pumps drain the pipes for at
// most drainTimeout, then reports the exit.
func (p *process) wait(drained *sync.WaitGroup, onFinish func(*process)) {
	ws := <-p.status
	p.mu.Lock()
	p.running = false
	if ws.Signaled() {
		p.exitCode, p.exitSignal = 128+int(ws.Signal()), signalName(ws.Signal())
	} else {
		p.exitCode = ws.ExitStatus()
	}
	p.draining = true
	p.changed.Broadcast()
	p.mu.Unlock()

	deadline := time.Now().Add(drainTimeout)
	for _, f := range p.pipes {
		if f != nil {
			f.SetReadDeadline(deadline) // fails harmlessly if already at EOF and closed
		}
	}
	drained.Wait()
	if p.stdin != nil {
		p.stdin.Close()
	}

	p.mu.Lock()
	p.finished = true
	if p.subscribed {
		p.out.send(p.exitEvent())
	}
	p.ring.compact()
	p.mu.Unlock()
	onFinish(p)
}

// attach subscribes with a fresh credit window. reply is called (under the
// lock, so before any event of this attach) with whether the process is still
// running. With replay, the ring's content is sent first, coalesced into
// events of at most readChunk bytes; it counts against the credit like live
// output. An already reported exit is reported again.
func (p *process) attach(window int64, replay bool, reply func(running bool)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	reply(p.running)
	p.subscribed = true
	p.credit = window
	p.changed.Broadcast()
	if replay {
		var pending []byte
		pendingFd := 0
		flush := func() {
			if len(pending) > 0 {
				p.credit -= int64(len(pending))
				p.out.send(outEvent{Ev: "out", Pid: p.pid, Fd: pendingFd, Data: pending})
				pending = pending[:0]
			}
		}
		p.ring.each(func(fd int, data []byte) {
			if fd != pendingFd || len(pending)+len(data) > readChunk {
				flush()
				pendingFd = fd
			}
			pending = append(pending, data...)
		})
		flush()
	}
	if p.finished {
		p.out.send(p.exitEvent())
	}
}

func (p *process) detach() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subscribed = false
	p.changed.Broadcast()
}

func (p *process) addCredit(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.credit = min(p.credit+n, maxCredit)
	p.changed.Broadcast()
}

func (p *process) exitEvent() exitEvent {
	ev := exitEvent{Ev: "exit", Pid: p.pid, Code: p.exitCode}
	if p.exitSignal != "" {
		sig := p.exitSignal
		ev.Signal = &sig
	}
	return ev
}

type psEntry struct {
	Pid         int      `json:"pid"`
	Cmd         []string `json:"cmd"`
	Tag         string   `json:"tag"`
	Cwd         string   `json:"cwd"`
	User        string   `json:"user"`
	StartedAtMs int64    `json:"startedAtMs"`
	Running     bool     `json:"running"`
	ExitCode    *int     `json:"exitCode"`
	Signal      *string  `json:"signal"`
	Pty         bool     `json:"pty,omitempty"` // started on a terminal (protocol 3)
}

func (p *process) info() psEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := psEntry{
		Pid: p.pid, Cmd: p.cmd, Tag: p.tag, Cwd: p.cwd, User: p.user,
		StartedAtMs: p.started.UnixMilli(), Running: p.running, Pty: p.pty != nil,
	}
	if !p.running {
		code := p.exitCode
		e.ExitCode = &code
		e.Signal = p.exitEvent().Signal
	}
	return e
}

func (p *process) isRunning() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// processTable holds running processes and the most recently finished ones.
type processTable struct {
	mu       sync.Mutex
	byPid    map[int]*process
	finished []*process // oldest first, at most keepExited
	// hidden holds the spare shell (spare.go) until it is claimed: it takes
	// its pid's slot, so a finished process with a reused pid cannot route a
	// signal to it, but get and list do not see it.
	hidden map[*process]bool
}

func newProcessTable() *processTable {
	return &processTable{byPid: make(map[int]*process), hidden: make(map[*process]bool)}
}

// add registers p, replacing a finished process whose pid was reused.
func (t *processTable) add(p *process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byPid[p.pid] = p
}

// addHidden registers a spare shell, invisible until reveal.
func (t *processTable) addHidden(p *process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byPid[p.pid] = p
	t.hidden[p] = true
}

func (t *processTable) reveal(p *process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.hidden, p)
}

// dropHidden forgets a spare shell that exited before being claimed.
func (t *processTable) dropHidden(p *process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hidden[p] {
		delete(t.hidden, p)
		if t.byPid[p.pid] == p {
			delete(t.byPid, p.pid)
		}
	}
}

func (t *processTable) get(pid int) (*process, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.byPid[pid]; p != nil && !t.hidden[p] {
		return p, nil
	}
	return nil, errorf(codeNoSuchProcess, "no process with pid %d", pid)
}

// retire records that p has finished, forgetting the oldest finished process
// beyond keepExited.
func (t *processTable) retire(p *process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.finished = append(t.finished, p)
	if len(t.finished) > keepExited {
		old := t.finished[0]
		t.finished[0] = nil
		t.finished = t.finished[1:]
		if t.byPid[old.pid] == old {
			delete(t.byPid, old.pid)
		}
	}
}

// list returns all known processes, oldest first.
func (t *processTable) list() []*process {
	t.mu.Lock()
	procs := make([]*process, 0, len(t.byPid))
	for _, p := range t.byPid {
		if !t.hidden[p] {
			procs = append(procs, p)
		}
	}
	t.mu.Unlock()
	sort.Slice(procs, func(i, j int) bool {
		if !procs[i].started.Equal(procs[j].started) {
			return procs[i].started.Before(procs[j].started)
		}
		return procs[i].pid < procs[j].pid
	})
	return procs
}
