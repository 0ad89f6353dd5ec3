package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// expectChange reads fs events until wid has reported op on name; what
// other watches report meanwhile is kept for their turn.
func (h *harness) expectChange(wid int, name, op string) {
	h.t.Helper()
	want := fsChange{Name: name, Op: op}
	deadline := time.After(waitLimit)
	for {
		for i, c := range h.seen[wid] {
			if c == want {
				h.seen[wid] = h.seen[wid][i+1:]
				return
			}
		}
		select {
		case ev := <-h.events:
			if ev.Ev == "fs" {
				h.seen[ev.Wid] = append(h.seen[ev.Wid], ev.Events...)
			}
		case <-deadline:
			h.t.Fatalf("no %s of %s", op, name)
		}
	}
}

func TestWatchEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	var flat, deep struct{ Wid int }
	h.ok(map[string]any{"op": "watch", "path": dir}, &flat)
	h.ok(map[string]any{"op": "watch", "path": dir, "recursive": true}, &deep)

	a := filepath.Join(dir, "a.txt")
	os.WriteFile(a, []byte("x"), 0o644)
	h.expectChange(flat.Wid, "a.txt", "create")
	h.expectChange(deep.Wid, "a.txt", "write")
	os.Chmod(a, 0o600)
	h.expectChange(flat.Wid, "a.txt", "chmod")
	os.Rename(a, filepath.Join(dir, "b.txt"))
	h.expectChange(flat.Wid, "a.txt", "rename")
	os.Remove(filepath.Join(dir, "b.txt"))
	h.expectChange(flat.Wid, "b.txt", "remove")

	// Below the top: only the recursive watch sees it, also in a directory made after it started.
	os.WriteFile(filepath.Join(dir, "sub", "c"), nil, 0o644)
	h.expectChange(deep.Wid, "sub/c", "create")
	os.MkdirAll(filepath.Join(dir, "new"), 0o755)
	h.expectChange(deep.Wid, "new", "create")
	eventually(t, "the new directory watched", func() bool {
		os.WriteFile(filepath.Join(dir, "new", "d"), []byte("y"), 0o644)
		select {
		case ev := <-h.events:
			for _, c := range ev.Events {
				if c.Name == "new/d" && ev.Wid == deep.Wid {
					return true
				}
			}
		case <-time.After(100 * time.Millisecond):
		}
		return false
	})

	h.ok(map[string]any{"op": "unwatch", "wid": flat.Wid}, nil)
	h.fails(map[string]any{"op": "unwatch", "wid": flat.Wid}, codeNotFound)
	// Removing the watched directory ends the watch with a reason.
	os.RemoveAll(dir)
	deadline := time.After(waitLimit)
	for {
		select {
		case ev := <-h.events:
			if ev.Ev == "fs" && ev.Wid == deep.Wid && ev.End != "" {
				return
			}
			if ev.Ev == "fs" && ev.Wid == flat.Wid {
				t.Fatalf("event of an unwatched watch: %+v", ev)
			}
		case <-deadline:
			t.Fatal("no end event")
		}
	}
}

func TestWatchErrorsAndDrops(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	h.fails(map[string]any{"op": "watch", "path": filepath.Join(dir, "missing")}, codeNotFound)
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	h.fails(map[string]any{"op": "watch", "path": filepath.Join(dir, "f")}, codeNotADirectory)
	h.fails(map[string]any{"op": "watch", "path": "relative"}, codeInvalidArgument)

	// A symlink to a directory is followed at the top only.
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link"))
	var res struct{ Wid int }
	h.ok(map[string]any{"op": "watch", "path": filepath.Join(dir, "link")}, &res)
	os.WriteFile(filepath.Join(dir, "real", "f"), nil, 0o644)
	h.expectChange(res.Wid, "f", "create")

	// More changes than the queue holds while the channel is not read: the rest is counted as dropped.
	w := &watch{id: 1, out: nil, dirs: map[int32]string{}}
	w.changed.L = &w.mu
	for i := 0; i < maxWatchPending+10; i++ {
		w.queue(fsChange{Name: "x", Op: "write"})
	}
	if len(w.pending) != maxWatchPending || w.dropped != 10 {
		t.Fatalf("pending %d dropped %d", len(w.pending), w.dropped)
	}
}
