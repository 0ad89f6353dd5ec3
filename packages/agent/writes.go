package main

import (
	"log"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Atomic file writes: write_open creates a temporary file beside the target,
// write_chunk appends to it, and write_close renames it over the target.

const handleIdleTimeout = 60 * time.Second

type writeHandle struct {
	id   string
	path string // final destination

	mu   sync.Mutex
	file *os.File // the temporary file; nil once closed or aborted
	size int64
	used time.Time   // last request on the handle
	idle *time.Timer // aborts the handle after handleIdleTimeout without use
}

type writeHandles struct {
	mu     sync.Mutex
	lastID int
	open   map[string]*writeHandle
}

func newWriteHandles() *writeHandles {
	return &writeHandles{open: make(map[string]*writeHandle)}
}

func (w *writeHandles) add(path string, file *os.File) *writeHandle {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastID++
	h := &writeHandle{id: "h" + strconv.Itoa(w.lastID), path: path, file: file, used: time.Now()}
	h.idle = time.AfterFunc(handleIdleTimeout, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		// The timer may fire just as a request uses the handle; that request
		// has re-armed it, so only act on a handle that is really idle.
		if h.file != nil && time.Since(h.used) >= handleIdleTimeout {
			w.discard(h)
			log.Printf("write handle %s for %s aborted after %v idle", h.id, h.path, handleIdleTimeout)
		}
	})
	w.open[h.id] = h
	return h
}

// use returns the open handle id, locked, with its idle timer restarted.
func (w *writeHandles) use(id string) (*writeHandle, error) {
	w.mu.Lock()
	h := w.open[id]
	w.mu.Unlock()
	if h != nil {
		h.mu.Lock()
		if h.file != nil {
			h.used = time.Now()
			h.idle.Reset(handleIdleTimeout)
			return h, nil
		}
		h.mu.Unlock()
	}
	return nil, errorf(codeNotFound, "no open write handle %q", id)
}

// release ends h: it closes the temporary file and forgets the handle. The
// caller holds h.mu.
func (w *writeHandles) release(h *writeHandle) error {
	h.idle.Stop()
	err := h.file.Close()
	h.file = nil
	w.mu.Lock()
	delete(w.open, h.id)
	w.mu.Unlock()
	return err
}

// discard ends h and removes its temporary file. The caller holds h.mu.
func (w *writeHandles) discard(h *writeHandle) {
	tmp := h.file.Name()
	w.release(h)
	os.Remove(tmp)
}

func (a *Agent) writeOpen(c *call, req *request) (any, error) {
	path, err := checkPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	if path == "/" {
		return nil, errorf(codeIsADirectory, "/ is a directory")
	}
	mode, err := checkMode(req.Mode, 0o644)
	if err != nil {
		return nil, err
	}
	owner, err := ownerFor(req.User)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, errorf(codeIsADirectory, "%s is a directory", path)
	}
	dir := filepath.Dir(path)
	if req.Parents == nil || *req.Parents {
		if err := makeParents(dir, owner); err != nil {
			return nil, err
		}
	}
	// Same directory as the target, so that the final rename is atomic.
	file, err := os.CreateTemp(dir, "."+filepath.Base(path)+".stasis-*")
	if err != nil {
		return nil, fsError(err)
	}
	if err := setModeOwner(file.Name(), mode, owner); err != nil {
		file.Close()
		os.Remove(file.Name())
		return nil, fsError(err)
	}
	h := a.writes.add(path, file)
	return struct {
		Handle string `json:"handle"`
	}{h.id}, nil
}

func (a *Agent) writeChunk(c *call, req *request) (any, error) {
	if limit := req.dataLimit(); int64(len(req.Data)) > limit {
		return nil, errorf(codeTooLarge, "data exceeds %d bytes", limit)
	}
	h, err := a.writes.use(req.Handle)
	if err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	n, err := h.file.Write(req.Data)
	h.size += int64(n)
	if err != nil {
		return nil, fsError(err)
	}
	return empty{}, nil
}

func (a *Agent) writeClose(c *call, req *request) (any, error) {
	h, err := a.writes.use(req.Handle)
	if err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	tmp := h.file.Name()
	err = a.writes.release(h)
	// The file as written, described before the rename: a process may move or delete it the moment it
	// appears, and the write still happened.
	var fi os.FileInfo
	if err == nil {
		fi, err = os.Lstat(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, h.path)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fsError(err)
	}
	return describe(h.path, fi), nil
}

func (a *Agent) writeAbort(c *call, req *request) (any, error) {
	h, err := a.writes.use(req.Handle)
	if err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	a.writes.discard(h)
	return empty{}, nil
}
