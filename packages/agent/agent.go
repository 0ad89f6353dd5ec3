package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Agent serves the protocol over one request stream and one event stream.
type Agent struct {
	out     *lineWriter
	procs   *processTable
	spares  *spareShells
	writes  *writeHandles
	watches watchTable
	serial  serializer
	started time.Time
}

// NewAgent returns an agent that writes replies and events to w.
func NewAgent(w io.Writer) *Agent {
	startReaper()
	a := &Agent{
		out:     newLineWriter(w),
		procs:   newProcessTable(),
		writes:  newWriteHandles(),
		started: time.Now(),
	}
	a.spares = newSpareShells(a)
	return a
}

// Serve sends the hello event, then handles the requests read from r until
// it ends; it returns the read error (io.EOF at end of stream). Processes
// keep running after Serve returns.
func (a *Agent) Serve(r io.Reader) error {
	a.out.send(helloEvent{Ev: "hello", Version: version, Protocol: protocolVersion})
	messages := newMessageReader(r, maxLineSize)
	for {
		m, err := messages.next()
		if err != nil {
			return err
		}
		a.dispatch(m)
	}
}

type handler func(a *Agent, c *call, req *request) (any, error)

type opSpec struct {
	handle handler
	// key, when set, names the requests that must run one at a time in
	// arrival order; all others run concurrently.
	key     func(req *request) string
	noReply bool // fire-and-forget op, sent without an id
}

// Keys for ordering: stdin writes to one process; subscription changes of
// one process (ack, attach, detach); chunks of one write handle.
func stdinKey(req *request) string  { return "stdin:" + strconv.Itoa(req.Pid) }
func subKey(req *request) string    { return "sub:" + strconv.Itoa(req.Pid) }
func handleKey(req *request) string { return "write:" + req.Handle }

var ops = map[string]opSpec{
	"exec":        {handle: (*Agent).exec},
	"prewarm":     {handle: (*Agent).prewarm},
	"ack":         {handle: (*Agent).ack, key: subKey, noReply: true},
	"attach":      {handle: (*Agent).attach, key: subKey},
	"detach":      {handle: (*Agent).detach, key: subKey},
	"stdin":       {handle: (*Agent).writeStdin, key: stdinKey},
	"signal":      {handle: (*Agent).signal},
	"resize":      {handle: (*Agent).resize},
	"watch":       {handle: (*Agent).watch},
	"unwatch":     {handle: (*Agent).unwatch},
	"ps":          {handle: (*Agent).ps},
	"stat":        {handle: (*Agent).stat},
	"list":        {handle: (*Agent).list},
	"mkdir":       {handle: (*Agent).mkdir},
	"move":        {handle: (*Agent).move},
	"remove":      {handle: (*Agent).remove},
	"read":        {handle: (*Agent).read},
	"write_open":  {handle: (*Agent).writeOpen},
	"write_chunk": {handle: (*Agent).writeChunk, key: handleKey},
	"write_close": {handle: (*Agent).writeClose, key: handleKey},
	"write_abort": {handle: (*Agent).writeAbort, key: handleKey},
	"ping":        {handle: (*Agent).ping},
	"stats":       {handle: (*Agent).stats},
}

// dispatch decodes one request and schedules its handler. It never blocks on
// output, so the daemon can always keep writing requests.
func (a *Agent) dispatch(m inMessage) {
	line := m.body
	if len(bytes.TrimSpace(line)) == 0 && !m.framed {
		return
	}
	if len(line)+len(m.payload) > largeMessage {
		trimSoon()
	}
	req := new(request)
	var err error
	if err = json.Unmarshal(line, req); err != nil {
		err = errorf(codeInvalidArgument, "%v", err)
	} else if m.framed && req.CRC != nil && crc32.ChecksumIEEE(m.payload) != *req.CRC {
		// A torn frame completed by the next daemon's resync padding: never act on it.
		err = errorf(codeInvalidArgument, "the frame's payload does not match its crc (torn mid-write)")
	} else if m.framed && req.Data != nil {
		err = errorf(codeInvalidArgument, "a frame carries its data as the payload, not in its header")
	} else if m.framed {
		req.Data, req.framed = m.payload, true
	}
	if err != nil {
		// Reply to a well-formed request whose fields have the wrong types.
		var envelope struct {
			ID *int64 `json:"id"`
		}
		if json.Unmarshal(line, &envelope) != nil || envelope.ID == nil {
			log.Printf("ignoring malformed message (%d bytes): %v", len(line), err)
			return
		}
		a.schedule("", &call{a: a, id: envelope.ID, framed: m.framed}, "decode", func() (any, error) {
			return nil, err
		})
		return
	}
	c := &call{a: a, id: req.ID, framed: m.framed}
	spec, known := ops[req.Op]
	switch {
	case req.ID == nil && !(known && spec.noReply):
		log.Printf("ignoring %q request without an id", limit(req.Op, 64))
	case !known:
		a.schedule("", c, "unknown", func() (any, error) {
			return nil, errorf(codeUnknownOp, "unknown op %q", limit(req.Op, 64))
		})
	default:
		key := ""
		if spec.key != nil {
			key = spec.key(req)
		}
		a.schedule(key, c, req.Op, func() (any, error) { return spec.handle(a, c, req) })
	}
}

// schedule runs fn and replies with its outcome. A panic is reported as
// io_error instead of taking PID 1, and with it the sandbox, down.
func (a *Agent) schedule(key string, c *call, op string, fn func() (any, error)) {
	a.serial.run(key, func() {
		defer func() {
			if p := recover(); p != nil {
				log.Printf("panic in %s: %v\n%s", op, p, debug.Stack())
				c.finish(nil, errorf(codeIOError, "internal error: %v", p))
			}
		}()
		result, err := fn()
		if c.id == nil && err != nil {
			log.Printf("%s: %v", op, err)
		}
		c.finish(result, err)
	})
}

// call is one request being handled. Handlers normally just return their
// result; those that must order their reply before events (exec, attach)
// call finish themselves, and the returned values are then ignored.
type call struct {
	a       *Agent
	id      *int64 // nil for fire-and-forget requests
	framed  bool   // the request came as a frame: so does the reply
	replied bool
}

// payloadResult is a result with bulk data, which a framed reply carries as
// its payload instead of base64 in the JSON.
type payloadResult interface {
	splitPayload() (meta any, payload []byte)
}

func (c *call) finish(result any, err error) {
	if c.replied || c.id == nil {
		return
	}
	c.replied = true
	r := reply{ID: *c.id, OK: err == nil}
	if err != nil {
		var apiErr *apiError
		if !errors.As(err, &apiErr) {
			apiErr = &apiError{Code: codeIOError, Message: err.Error()}
		}
		r.Error = apiErr
	} else {
		if result == nil {
			result = empty{}
		}
		r.Result = result
	}
	if !c.framed {
		c.a.out.send(r)
		return
	}
	var payload []byte
	if pr, ok := r.Result.(payloadResult); ok {
		r.Result, payload = pr.splitPayload()
	}
	c.a.out.sendFrame(r, payload)
}

func (a *Agent) ping(c *call, req *request) (any, error) {
	// The protocol too: a daemon that reattaches to a running agent gets no hello.
	return struct {
		Version  string `json:"version"`
		Protocol int    `json:"protocol"`
		UptimeMs int64  `json:"uptimeMs"`
	}{version, protocolVersion, time.Since(a.started).Milliseconds()}, nil
}

func (a *Agent) stats(c *call, req *request) (any, error) {
	running := 0
	for _, p := range a.procs.list() {
		if p.isRunning() {
			running++
		}
	}
	return struct {
		RSSKiB     int64 `json:"rssKiB"`
		Goroutines int   `json:"goroutines"`
		Processes  int   `json:"processes"`
	}{selfRSSKiB(), runtime.NumGoroutine(), running}, nil
}

// selfRSSKiB reads VmRSS from /proc/self/status (0 if unavailable).
func selfRSSKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func limit(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
