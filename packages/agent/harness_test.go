package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// End-to-end harness: an in-process agent served over pipes, driven through
// the same JSON lines and frames the daemon writes.

func TestMain(m *testing.M) {
	// Orphans of test processes must be reparented to (and reaped by) the
	// test binary, as they would be by the agent running as PID 1.
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "becomeSubreaper:", err)
		os.Exit(1)
	}
	// An op whose handler panics, registered before any test runs.
	ops["test_panic"] = opSpec{handle: func(*Agent, *call, *request) (any, error) { panic("boom") }}
	os.Exit(m.Run())
}

const waitLimit = 10 * time.Second

// message is any line the agent writes.
type message struct {
	ID       *int64          `json:"id"`
	OK       bool            `json:"ok"`
	Result   json.RawMessage `json:"result"`
	Error    *apiError       `json:"error"`
	Ev       string          `json:"ev"`
	Pid      int             `json:"pid"`
	Fd       int             `json:"fd"`
	Data     []byte          `json:"data"`
	Code     int             `json:"code"`
	Signal   *string         `json:"signal"`
	Version  string          `json:"version"`
	Protocol int             `json:"protocol"`
	Wid      int             `json:"wid"`
	Events   []fsChange      `json:"events"`
	Dropped  int             `json:"dropped"`
	End      string          `json:"end"`

	framed  bool   // it came as a frame
	payload []byte // the frame's payload
}

type harness struct {
	t       *testing.T
	agent   *Agent
	in      io.Writer
	events  chan message
	mu      sync.Mutex
	lastID  int64
	pending map[int64]chan message
	seen    map[int][]fsChange // watch changes read but not yet expected
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &harness{t: t, in: inW, events: make(chan message, 10000), pending: make(map[int64]chan message), seen: make(map[int][]fsChange)}
	h.agent = NewAgent(outW)
	go h.agent.Serve(inR)
	go h.readLoop(outR)
	t.Cleanup(func() { inW.Close() })
	if ev := h.event(); ev.Ev != "hello" || ev.Version != version || ev.Protocol != protocolVersion {
		t.Fatalf("first message = %+v, want hello", ev)
	}
	return h
}

func (h *harness) readLoop(r io.Reader) {
	messages := newMessageReader(r, 16<<20)
	for {
		in, err := messages.next()
		if err != nil {
			return
		}
		line := in.body
		var m message
		if err := json.Unmarshal(line, &m); err != nil {
			panic(fmt.Sprintf("agent wrote invalid JSON %.100q: %v", line, err))
		}
		m.framed, m.payload = in.framed, in.payload
		if m.ID == nil {
			h.events <- m
			continue
		}
		h.mu.Lock()
		ch := h.pending[*m.ID]
		delete(h.pending, *m.ID)
		h.mu.Unlock()
		if ch == nil {
			panic(fmt.Sprintf("reply to an unknown request: %s", line))
		}
		ch <- m
	}
}

func (h *harness) send(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.in, line+"\n"); err != nil {
		h.t.Fatal(err)
	}
}

// start sends req with a fresh id and returns a channel for its reply.
func (h *harness) start(req map[string]any) <-chan message {
	h.t.Helper()
	ch, b := h.prepare(req)
	h.send(string(b))
	return ch
}

// startFrame sends req as a frame with payload, with a fresh id, and returns
// a channel for its reply.
func (h *harness) startFrame(req map[string]any, payload []byte) <-chan message {
	h.t.Helper()
	ch, b := h.prepare(req)
	frame := appendFramePrefix(nil, len(b), len(payload))
	frame = append(append(frame, b...), payload...)
	if _, err := h.in.Write(frame); err != nil {
		h.t.Fatal(err)
	}
	return ch
}

// prepare gives req a fresh id, registers a channel for its reply and
// encodes it.
func (h *harness) prepare(req map[string]any) (chan message, []byte) {
	h.t.Helper()
	ch := make(chan message, 1)
	h.mu.Lock()
	h.lastID++
	id := h.lastID
	h.pending[id] = ch
	h.mu.Unlock()
	req["id"] = id
	b, err := json.Marshal(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return ch, b
}

func (h *harness) wait(ch <-chan message) message {
	h.t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitLimit):
		h.t.Fatal("no reply")
		return message{}
	}
}

func (h *harness) call(req map[string]any) message {
	h.t.Helper()
	return h.wait(h.start(req))
}

// ok calls req, requires success and decodes the result into result (if
// not nil).
func (h *harness) ok(req map[string]any, result any) {
	h.t.Helper()
	m := h.call(req)
	if !m.OK {
		h.t.Fatalf("%v failed: %+v", req["op"], m.Error)
	}
	if result != nil {
		if err := json.Unmarshal(m.Result, result); err != nil {
			h.t.Fatalf("%v result %s: %v", req["op"], m.Result, err)
		}
	}
}

// fails calls req and requires the error code.
func (h *harness) fails(req map[string]any, code string) {
	h.t.Helper()
	m := h.call(req)
	if m.OK || m.Error == nil || m.Error.Code != code {
		h.t.Fatalf("%v = ok %v, error %+v; want error %s", req["op"], m.OK, m.Error, code)
	}
}

func (h *harness) event() message {
	h.t.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(waitLimit):
		h.t.Fatal("no event")
		return message{}
	}
}

// quiet requires that no event arrives for d.
func (h *harness) quiet(d time.Duration) {
	h.t.Helper()
	select {
	case ev := <-h.events:
		h.t.Fatalf("unexpected event %s pid %d fd %d %q", ev.Ev, ev.Pid, ev.Fd, ev.Data)
	case <-time.After(d):
	}
}

func (h *harness) exec(req map[string]any) int {
	h.t.Helper()
	req["op"] = "exec"
	var res struct{ Pid int }
	h.ok(req, &res)
	if res.Pid <= 0 {
		h.t.Fatalf("exec returned pid %d", res.Pid)
	}
	return res.Pid
}

type result struct {
	stdout, stderr string
	code           int
	signal         string
}

// collect gathers pid's output events up to and including its exit event.
func (h *harness) collect(pid int) result {
	h.t.Helper()
	var stdout, stderr strings.Builder
	for {
		ev := h.event()
		if ev.Pid != pid {
			h.t.Fatalf("event %s for pid %d while waiting for %d", ev.Ev, ev.Pid, pid)
		}
		switch {
		case ev.Ev == "out" && ev.Fd == 1:
			stdout.Write(ev.Data)
		case ev.Ev == "out" && ev.Fd == 2:
			stderr.Write(ev.Data)
		case ev.Ev == "exit":
			r := result{stdout: stdout.String(), stderr: stderr.String(), code: ev.Code}
			if ev.Signal != nil {
				r.signal = *ev.Signal
			}
			return r
		default:
			h.t.Fatalf("unexpected event %+v", ev)
		}
	}
}

// outBytes counts pid's stdout bytes until no event arrives for quietFor.
func (h *harness) outBytes(pid int, quietFor time.Duration) int {
	h.t.Helper()
	n := 0
	for {
		select {
		case ev := <-h.events:
			if ev.Ev != "out" || ev.Pid != pid {
				h.t.Fatalf("unexpected event %+v", ev)
			}
			n += len(ev.Data)
		case <-time.After(quietFor):
			return n
		}
	}
}

func (h *harness) ps() []psEntry {
	h.t.Helper()
	var res struct{ Processes []psEntry }
	h.ok(map[string]any{"op": "ps"}, &res)
	return res.Processes
}

func (h *harness) psEntry(pid int) psEntry {
	h.t.Helper()
	for _, e := range h.ps() {
		if e.Pid == pid {
			return e
		}
	}
	h.t.Fatalf("pid %d not in ps", pid)
	return psEntry{}
}

// eventually polls cond until it holds, or fails after waitLimit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > waitLimit {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func itoa(n int) string { return fmt.Sprint(n) }

// allPids lists the pids in /proc.
func allPids(t *testing.T) map[int]bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	pids := make(map[int]bool)
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
			pids[pid] = true
		}
	}
	return pids
}
