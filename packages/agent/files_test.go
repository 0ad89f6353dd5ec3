package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteAndRead(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "new", "sub", "a.txt") // parents are created by default

	var open struct{ Handle string }
	h.ok(map[string]any{"op": "write_open", "path": path}, &open)
	h.ok(map[string]any{"op": "write_chunk", "handle": open.Handle, "data": []byte("hello ")}, nil)
	h.ok(map[string]any{"op": "write_chunk", "handle": open.Handle, "data": []byte("world")}, nil)
	h.fails(map[string]any{"op": "stat", "path": path}, codeNotFound) // not visible before close
	var closed struct{ Size int64 }
	h.ok(map[string]any{"op": "write_close", "handle": open.Handle}, &closed)
	if closed.Size != 11 {
		t.Fatalf("size = %d", closed.Size)
	}
	h.fails(map[string]any{"op": "write_chunk", "handle": open.Handle, "data": []byte("x")}, codeNotFound)

	type readResult struct {
		Data []byte
		EOF  bool
		Size int64
	}
	reads := []struct {
		offset, length int64
		want           readResult
	}{
		{0, 5, readResult{[]byte("hello"), false, 11}},
		{6, 5, readResult{[]byte("world"), true, 11}},
		{6, 100, readResult{[]byte("world"), true, 11}},
		{100, 10, readResult{[]byte{}, true, 11}},
	}
	for _, r := range reads {
		var got readResult
		h.ok(map[string]any{"op": "read", "path": path, "offset": r.offset, "length": r.length}, &got)
		if string(got.Data) != string(r.want.Data) || got.EOF != r.want.EOF || got.Size != r.want.Size {
			t.Errorf("read(%d, %d) = %+v, want %+v", r.offset, r.length, got, r.want)
		}
	}
	h.fails(map[string]any{"op": "read", "path": path, "length": maxData + 1}, codeTooLarge)
	h.fails(map[string]any{"op": "read", "path": path, "offset": -1}, codeInvalidArgument)
	h.fails(map[string]any{"op": "read", "path": dir}, codeIsADirectory)
	h.fails(map[string]any{"op": "read", "path": filepath.Join(dir, "missing")}, codeNotFound)

	// Overwrite with a mode and an owner; abort leaves nothing behind.
	h.ok(map[string]any{"op": "write_open", "path": path, "mode": 0o600, "user": "nobody"}, &open)
	h.ok(map[string]any{"op": "write_close", "handle": open.Handle}, &closed)
	var st fileInfo
	h.ok(map[string]any{"op": "stat", "path": path}, &st)
	if st.Size != 0 || st.Mode != 0o600 || st.UID != 65534 {
		t.Fatalf("after overwrite: %+v", st)
	}
	h.ok(map[string]any{"op": "write_open", "path": filepath.Join(dir, "aborted")}, &open)
	h.ok(map[string]any{"op": "write_chunk", "handle": open.Handle, "data": []byte("x")}, nil)
	h.ok(map[string]any{"op": "write_abort", "handle": open.Handle}, nil)
	if names := dirNames(t, dir); names != "new" {
		t.Fatalf("directory holds %q after abort", names)
	}

	h.fails(map[string]any{"op": "write_open", "path": dir}, codeIsADirectory)
	h.fails(map[string]any{"op": "write_open", "path": filepath.Join(dir, "x", "y"), "parents": false}, codeNotFound)
	h.fails(map[string]any{"op": "write_open", "path": filepath.Join(path, "y")}, codeNotADirectory)
	h.fails(map[string]any{"op": "write_chunk", "handle": "h999"}, codeNotFound)
}

func TestStatAndList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "d", "e", "f"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "d", "file"), []byte("12345"), 0o640))
	must(t, os.WriteFile(filepath.Join(dir, "d-x"), nil, 0o644))
	must(t, os.Symlink("d", filepath.Join(dir, "link")))

	var st fileInfo
	h.ok(map[string]any{"op": "stat", "path": filepath.Join(dir, "d", "file")}, &st)
	if st.Name != "file" || st.Type != "file" || st.Size != 5 || st.Mode != 0o640 || st.MtimeMs == 0 {
		t.Fatalf("stat file = %+v", st)
	}
	h.ok(map[string]any{"op": "stat", "path": filepath.Join(dir, "link")}, &st)
	if st.Type != "symlink" || st.SymlinkTarget != "d" {
		t.Fatalf("stat symlink = %+v", st)
	}
	real, err := filepath.EvalSymlinks(dir)
	must(t, err)
	if r := st.Resolved; r == nil || r.Path != filepath.Join(real, "d") || r.Type != "dir" || r.Mode != 0o755 {
		t.Fatalf("stat symlink resolves to %+v", r)
	}
	must(t, os.Symlink("missing", filepath.Join(dir, "dangling")))
	st = fileInfo{}
	h.ok(map[string]any{"op": "stat", "path": filepath.Join(dir, "dangling")}, &st)
	if st.Type != "symlink" || st.SymlinkTarget != "missing" || st.Resolved != nil {
		t.Fatalf("stat dangling symlink = %+v", st)
	}
	must(t, os.Remove(filepath.Join(dir, "dangling")))
	h.ok(map[string]any{"op": "stat", "path": dir + "/d/"}, &st)
	if st.Type != "dir" || st.Path != dir+"/d" {
		t.Fatalf("stat dir = %+v", st)
	}
	h.fails(map[string]any{"op": "stat", "path": "relative/path"}, codeInvalidArgument)
	h.fails(map[string]any{"op": "stat", "path": filepath.Join(dir, "nope")}, codeNotFound)

	var list struct {
		Entries   []fileInfo
		Truncated bool
	}
	h.ok(map[string]any{"op": "list", "path": dir, "depth": 2}, &list)
	var paths []string
	for _, e := range list.Entries {
		paths = append(paths, strings.TrimPrefix(e.Path, dir))
	}
	// Sorted by path; depth 2 stops above d/e/f; the symlink is not followed.
	if got, want := strings.Join(paths, " "), "/d /d-x /d/e /d/file /link"; got != want || list.Truncated {
		t.Fatalf("list = %q (truncated %v), want %q", got, list.Truncated, want)
	}
	h.ok(map[string]any{"op": "list", "path": dir}, &list)
	if len(list.Entries) != 3 {
		t.Fatalf("depth 1 listed %d entries", len(list.Entries))
	}
	h.fails(map[string]any{"op": "list", "path": dir, "depth": 0}, codeInvalidArgument)
	h.fails(map[string]any{"op": "list", "path": filepath.Join(dir, "d-x")}, codeNotADirectory)
}

func TestMkdirMoveRemove(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	deep := filepath.Join(dir, "a", "b", "c")

	var mk struct{ Created bool }
	h.ok(map[string]any{"op": "mkdir", "path": deep, "mode": 0o700}, &mk)
	if !mk.Created {
		t.Fatal("mkdir did not report creating the directory")
	}
	h.ok(map[string]any{"op": "mkdir", "path": deep}, &mk)
	if mk.Created {
		t.Fatal("mkdir of an existing directory reported created")
	}
	var st fileInfo
	h.ok(map[string]any{"op": "stat", "path": deep}, &st)
	if st.Mode != 0o700 {
		t.Fatalf("mode = %#o", st.Mode)
	}
	h.ok(map[string]any{"op": "mkdir", "path": filepath.Join(dir, "owned", "x"), "user": "nobody"}, nil)
	h.ok(map[string]any{"op": "stat", "path": filepath.Join(dir, "owned")}, &st)
	if st.UID != 65534 || st.Mode != 0o755 {
		t.Fatalf("created parent = %+v", st)
	}
	h.fails(map[string]any{"op": "mkdir", "path": filepath.Join(dir, "p", "q"), "parents": false}, codeNotFound)
	must(t, os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644))
	h.fails(map[string]any{"op": "mkdir", "path": filepath.Join(dir, "file")}, codeAlreadyExists)

	h.ok(map[string]any{"op": "move", "from": filepath.Join(dir, "file"), "to": filepath.Join(dir, "a", "moved")}, nil)
	h.fails(map[string]any{"op": "stat", "path": filepath.Join(dir, "file")}, codeNotFound)
	h.ok(map[string]any{"op": "stat", "path": filepath.Join(dir, "a", "moved")}, nil)
	h.fails(map[string]any{"op": "move", "from": filepath.Join(dir, "nope"), "to": filepath.Join(dir, "x")}, codeNotFound)
	h.fails(map[string]any{"op": "move", "from": filepath.Join(dir, "a"), "to": filepath.Join(dir, "no", "dir")}, codeNotFound)

	h.fails(map[string]any{"op": "remove", "path": filepath.Join(dir, "a")}, codeNotEmpty)
	h.ok(map[string]any{"op": "remove", "path": filepath.Join(dir, "a", "moved")}, nil)
	h.ok(map[string]any{"op": "remove", "path": filepath.Join(dir, "a"), "recursive": true}, nil)
	h.fails(map[string]any{"op": "remove", "path": filepath.Join(dir, "a")}, codeNotFound)
	h.fails(map[string]any{"op": "remove", "path": "/"}, codeInvalidArgument)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func dirNames(t *testing.T, dir string) string {
	entries, err := os.ReadDir(dir)
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}
