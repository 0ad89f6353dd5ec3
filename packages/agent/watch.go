package main

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// File watches with inotify (standard library only). Each watch owns one
// inotify instance; a recursive one adds a watch per directory, and one for
// every directory created later. Events are sent in batches as "fs" events;
// what the daemon does not read in time is dropped beyond a bounded queue
// and counted, so a busy tree never blocks the agent nor grows its memory.

const (
	maxWatches      = 32   // live watches per agent
	maxWatchDirs    = 8192 // directories one recursive watch follows
	maxWatchPending = 4096 // events queued per watch before they are dropped
	watchBatch      = 256  // events per "fs" message
	watchMask       = syscall.IN_CREATE | syscall.IN_MODIFY | syscall.IN_DELETE | syscall.IN_MOVED_FROM |
		syscall.IN_MOVED_TO | syscall.IN_ATTRIB | syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF
)

type fsChange struct {
	Name string `json:"name"` // relative to the watched directory
	Op   string `json:"op"`   // create, write, remove, rename, chmod
}

type fsEvent struct {
	Ev      string     `json:"ev"`
	Wid     int        `json:"wid"`
	Events  []fsChange `json:"events,omitempty"`
	Dropped int        `json:"dropped,omitempty"`
	End     string     `json:"end,omitempty"` // the watch ended (its directory went away)
}

type watch struct {
	id        int
	root      string
	recursive bool
	file      *os.File // the inotify instance, in the poller
	out       *lineWriter

	mu      sync.Mutex
	changed sync.Cond
	dirs    map[int32]string // watch descriptor -> directory relative to root
	pending []fsChange
	dropped int
	ended   string
	closed  bool
}

type watchTable struct {
	mu   sync.Mutex
	next int
	byID map[int]*watch
}

func (a *Agent) watch(c *call, req *request) (any, error) {
	root, err := checkPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, fsError(err)
	} else if !fi.IsDir() {
		return nil, errorf(codeNotADirectory, "%s is not a directory", root)
	}
	// A symlink to a directory is followed at the top (below, links are entries, never followed).
	if resolved, err := filepath.EvalSymlinks(root); err == nil {
		root = resolved
	}
	t := &a.watches
	t.mu.Lock()
	if t.byID == nil {
		t.byID = make(map[int]*watch)
	}
	if len(t.byID) >= maxWatches {
		t.mu.Unlock()
		return nil, errorf(codeTooLarge, "at most %d watches at once", maxWatches)
	}
	t.next++
	w := &watch{id: t.next, root: root, recursive: req.Recursive, out: a.out, dirs: make(map[int32]string)}
	w.changed.L = &w.mu
	t.byID[w.id] = w
	t.mu.Unlock()

	if err := w.open(); err != nil {
		a.dropWatch(w.id)
		return nil, err
	}
	c.finish(struct {
		Wid int `json:"wid"`
	}{w.id}, nil)
	go w.read()
	go w.send(func() { a.dropWatch(w.id) })
	return nil, nil
}

func (a *Agent) unwatch(c *call, req *request) (any, error) {
	a.watches.mu.Lock()
	var found []*watch
	for id, w := range a.watches.byID {
		if req.All || id == req.Wid {
			found = append(found, w)
			delete(a.watches.byID, id)
		}
	}
	a.watches.mu.Unlock()
	if len(found) == 0 && !req.All {
		return nil, errorf(codeNotFound, "no watch %d", req.Wid)
	}
	for _, w := range found {
		w.stop("")
	}
	return empty{}, nil
}

func (a *Agent) dropWatch(id int) {
	a.watches.mu.Lock()
	defer a.watches.mu.Unlock()
	delete(a.watches.byID, id)
}

func (w *watch) open() error {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return errorf(codeTooLarge, "inotify: %v", err)
	}
	w.file = os.NewFile(uintptr(fd), "inotify")
	if err := w.add(""); err != nil {
		w.file.Close()
		return err
	}
	return nil
}

// add watches the directory rel (relative to the root) and, for a recursive
// watch, the directories below it.
func (w *watch) add(rel string) error {
	return filepath.WalkDir(filepath.Join(w.root, rel), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == filepath.Join(w.root, rel) {
				return fsError(err)
			}
			return nil // unreadable or already gone below the top: skipped
		}
		if !d.IsDir() {
			return nil
		}
		sub, _ := filepath.Rel(w.root, path)
		if sub == "." {
			sub = ""
		}
		w.mu.Lock()
		full := len(w.dirs) >= maxWatchDirs
		if full {
			w.dropped++
		}
		w.mu.Unlock()
		if full {
			return filepath.SkipAll
		}
		var wd int
		err = w.control(func(fd int) error {
			var e error
			wd, e = syscall.InotifyAddWatch(fd, path, watchMask|syscall.IN_ONLYDIR|syscall.IN_DONT_FOLLOW)
			return e
		})
		if err != nil {
			if path == w.root {
				return fsError(err)
			}
			return nil
		}
		w.mu.Lock()
		w.dirs[int32(wd)] = sub
		w.mu.Unlock()
		if !w.recursive {
			return filepath.SkipDir
		}
		return nil
	})
}

func (w *watch) control(fn func(fd int) error) error {
	rc, err := w.file.SyscallConn()
	if err != nil {
		return err
	}
	var inner error
	if err := rc.Control(func(fd uintptr) { inner = fn(int(fd)) }); err != nil {
		return err
	}
	return inner
}

// read turns inotify records into changes until the instance is closed.
func (w *watch) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.stop("inotify: " + err.Error())
			}
			return
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			start := off + syscall.SizeofInotifyEvent
			end := min(start+nameLen, n)
			name := string(trimNul(buf[start:end]))
			off = start + nameLen
			w.handle(wd, mask, name)
		}
	}
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func (w *watch) handle(wd int32, mask uint32, name string) {
	w.mu.Lock()
	dir, known := w.dirs[wd]
	if mask&syscall.IN_Q_OVERFLOW != 0 {
		w.dropped++
		w.changed.Broadcast()
	}
	if mask&syscall.IN_IGNORED != 0 {
		delete(w.dirs, wd)
	}
	w.mu.Unlock()
	if !known {
		return
	}
	if dir == "" && mask&(syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF) != 0 {
		w.stop("the watched directory was removed or moved")
		return
	}
	if name == "" {
		return // events of a subdirectory itself come from its parent's watch too
	}
	rel := filepath.Join(dir, name)
	for _, m := range []struct {
		bit uint32
		op  string
	}{
		{syscall.IN_CREATE, "create"}, {syscall.IN_MOVED_TO, "create"}, {syscall.IN_MODIFY, "write"},
		{syscall.IN_DELETE, "remove"}, {syscall.IN_MOVED_FROM, "rename"}, {syscall.IN_ATTRIB, "chmod"},
	} {
		if mask&m.bit != 0 {
			w.queue(fsChange{Name: rel, Op: m.op})
		}
	}
	if w.recursive && mask&syscall.IN_ISDIR != 0 && mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0 {
		w.add(rel)
	}
}

func (w *watch) queue(ch fsChange) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) >= maxWatchPending {
		w.dropped++
	} else {
		w.pending = append(w.pending, ch)
	}
	w.changed.Broadcast()
}

// send writes batches of queued changes to the daemon; a slow channel only
// lets the queue fill (and then drop), never blocks the inotify reader.
func (w *watch) send(done func()) {
	defer done()
	for {
		w.mu.Lock()
		for len(w.pending) == 0 && w.dropped == 0 && w.ended == "" && !w.closed {
			w.changed.Wait()
		}
		ev := fsEvent{Ev: "fs", Wid: w.id, Dropped: w.dropped}
		take := min(len(w.pending), watchBatch)
		ev.Events = append([]fsChange(nil), w.pending[:take]...)
		w.pending = w.pending[take:]
		w.dropped = 0
		last := len(w.pending) == 0 && (w.ended != "" || w.closed)
		if last {
			ev.End = w.ended
		}
		closed := w.closed && w.ended == ""
		w.mu.Unlock()
		if closed {
			return // unwatched: the daemon asked, it needs no end event
		}
		if len(ev.Events) > 0 || ev.Dropped > 0 || ev.End != "" {
			w.out.send(ev)
		}
		if last {
			return
		}
	}
}

// stop closes the instance; a reason other than "" is reported to the
// daemon as the watch's end.
func (w *watch) stop(reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	w.ended = reason
	w.file.Close()
	w.changed.Broadcast()
}
