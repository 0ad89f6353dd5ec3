package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// File ops. They run as root; a "user" field only chowns what is created.

// A listing stops at maxListEntries entries or listReplyBytes of JSON, with
// "truncated" set, so that its reply always fits in one message (maxLineSize:
// 10000 entries of long paths and symlink targets would not).
const (
	maxListEntries = 10000
	listReplyBytes = 3 << 20
)

type fileInfo struct {
	Name          string `json:"name"`
	Path          string `json:"path"`
	Type          string `json:"type"`
	Size          int64  `json:"size"`
	Mode          uint32 `json:"mode"`
	MtimeMs       int64  `json:"mtimeMs"`
	UID           uint32 `json:"uid"`
	GID           uint32 `json:"gid"`
	SymlinkTarget string `json:"symlinkTarget,omitempty"`
	// Resolved is where a symlink leads in the end (every link followed), absent when it leads nowhere.
	Resolved *linkTarget `json:"resolved,omitempty"`
}

type linkTarget struct {
	Path string `json:"path"`
	Type string `json:"type"`
	Mode uint32 `json:"mode"`
}

func (a *Agent) stat(c *call, req *request) (any, error) {
	path, err := checkPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fsError(err)
	}
	return describe(path, fi), nil
}

func (a *Agent) list(c *call, req *request) (any, error) {
	root, err := checkPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	depth := 1
	if req.Depth != nil {
		if depth = *req.Depth; depth < 1 {
			return nil, errorf(codeInvalidArgument, "depth must be at least 1")
		}
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, fsError(err)
	} else if !fi.IsDir() {
		return nil, errorf(codeNotADirectory, "%s is not a directory", root)
	}

	// Breadth-first, so that a truncated listing keeps the shallower levels.
	entries := []*fileInfo{}
	truncated := false
	size := 0
	level := []string{root}
walk:
	for d := 0; d < depth && len(level) > 0; d++ {
		var next []string
		for _, dir := range level {
			dirEntries, err := os.ReadDir(dir)
			if err != nil {
				if dir == root {
					return nil, fsError(err)
				}
				continue // unreadable or vanished subdirectory
			}
			for _, de := range dirEntries {
				if len(entries) == maxListEntries {
					truncated = true
					break walk
				}
				fi, err := de.Info() // lstat: symlinks are not followed
				if err != nil {
					continue
				}
				path := filepath.Join(dir, de.Name())
				info := describe(path, fi)
				if size += encodedSize(info) + 1; size > listReplyBytes {
					truncated = true
					break walk
				}
				entries = append(entries, info)
				if fi.IsDir() {
					next = append(next, path)
				}
			}
		}
		level = next
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	return struct {
		Entries   []*fileInfo `json:"entries"`
		Truncated bool        `json:"truncated"`
	}{entries, truncated}, nil
}

func (a *Agent) mkdir(c *call, req *request) (any, error) {
	path, err := checkPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	mode, err := checkMode(req.Mode, 0o755)
	if err != nil {
		return nil, err
	}
	owner, err := ownerFor(req.User)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil {
		if !fi.IsDir() {
			return nil, errorf(codeAlreadyExists, "%s exists and is not a directory", path)
		}
		return struct {
			Created bool `json:"created"`
		}{false}, nil
	}
	if req.Parents == nil || *req.Parents {
		if err := makeParents(filepath.Dir(path), owner); err != nil {
			return nil, err
		}
	}
	if err := createDir(path, mode, owner); err != nil {
		return nil, fsError(err)
	}
	return struct {
		Created bool `json:"created"`
	}{true}, nil
}

func (a *Agent) move(c *call, req *request) (any, error) {
	from, err := checkPath("from", req.From)
	if err != nil {
		return nil, err
	}
	to, err := checkPath("to", req.To)
	if err != nil {
		return nil, err
	}
	if from == "/" || to == "/" {
		return nil, errorf(codeInvalidArgument, "cannot move /")
	}
	if err := os.Rename(from, to); err != nil {
		return nil, fsError(err)
	}
	return empty{}, nil
}

func (a *Agent) remove(c *call, req *request) (any, error) {
	path, err := checkPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	if path == "/" {
		return nil, errorf(codeInvalidArgument, "refusing to remove /")
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fsError(err)
	}
	if req.Recursive && fi.IsDir() {
		err = os.RemoveAll(path)
	} else {
		err = os.Remove(path)
	}
	if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		return nil, errorf(codeNotEmpty, "%s is not empty", path)
	} else if err != nil {
		return nil, fsError(err)
	}
	return empty{}, nil
}

func (a *Agent) read(c *call, req *request) (any, error) {
	path, err := checkPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	if req.Offset < 0 {
		return nil, errorf(codeInvalidArgument, "offset must not be negative")
	}
	length := int64(maxData)
	if req.Length != nil {
		if length = *req.Length; length < 0 {
			return nil, errorf(codeInvalidArgument, "length must not be negative")
		} else if length > req.dataLimit() {
			return nil, errorf(codeTooLarge, "length exceeds %d bytes", req.dataLimit())
		}
	}
	// O_NONBLOCK: opening a FIFO must not hang the request.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fsError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fsError(err)
	}
	if fi.IsDir() {
		return nil, errorf(codeIsADirectory, "%s is a directory", path)
	}
	if !fi.Mode().IsRegular() {
		// A FIFO would block or fail mid-stream, a device such as /dev/zero never ends: only regular
		// files are read (those of /proc and /sys are regular).
		return nil, errorf(codeNotRegular, "%s is not a regular file (%s)", path, kindOf(fi.Mode()))
	}
	if fi.Size() > 0 {
		// Don't allocate 1 MiB to read a small file. (Files such as those in
		// /proc report size 0 and get the whole length.)
		length = min(length, max(fi.Size()-req.Offset, 0))
	}
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, req.Offset)
	if err != nil && err != io.EOF {
		return nil, fsError(err)
	}
	eof := err == io.EOF || req.Offset+int64(n) >= fi.Size()
	return &readResult{Data: buf[:n], EOF: eof, Size: fi.Size()}, nil
}

type readResult struct {
	Data []byte `json:"data"`
	EOF  bool   `json:"eof"`
	Size int64  `json:"size"`
}

// splitPayload gives a framed reply its data as the payload.
func (r *readResult) splitPayload() (any, []byte) {
	return struct {
		EOF  bool  `json:"eof"`
		Size int64 `json:"size"`
	}{r.EOF, r.Size}, r.Data
}

// kindOf names a file type that is not a regular file, for messages.
func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

func describe(path string, fi fs.FileInfo) *fileInfo {
	info := &fileInfo{
		Name:    filepath.Base(path),
		Path:    path,
		Size:    fi.Size(),
		Mode:    uint32(fi.Mode().Perm()),
		MtimeMs: fi.ModTime().UnixMilli(),
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		info.Mode = st.Mode & 0o7777 // with setuid, setgid and sticky bits
		info.UID, info.GID = st.Uid, st.Gid
	}
	info.Type = fileType(fi.Mode())
	if info.Type == "symlink" {
		info.SymlinkTarget, _ = os.Readlink(path)
		if real, err := filepath.EvalSymlinks(path); err == nil {
			if target, err := os.Stat(real); err == nil {
				info.Resolved = &linkTarget{Path: real, Type: fileType(target.Mode()), Mode: uint32(target.Mode().Perm())}
			}
		}
	}
	return info
}

func fileType(mode fs.FileMode) string {
	switch {
	case mode.IsRegular():
		return "file"
	case mode.IsDir():
		return "dir"
	case mode&fs.ModeSymlink != 0:
		return "symlink"
	default:
		return "other"
	}
}

// checkPath validates an absolute path field and returns it cleaned.
func checkPath(field, path string) (string, error) {
	switch {
	case path == "":
		return "", errorf(codeInvalidArgument, "%s is required", field)
	case !filepath.IsAbs(path):
		return "", errorf(codeInvalidArgument, "%s must be an absolute path", field)
	case strings.IndexByte(path, 0) >= 0:
		return "", errorf(codeInvalidArgument, "%s contains a NUL byte", field)
	}
	return filepath.Clean(path), nil
}

func checkMode(mode *uint32, def uint32) (uint32, error) {
	if mode == nil {
		return def, nil
	}
	if *mode > 0o7777 {
		return 0, errorf(codeInvalidArgument, "mode %#o has bits beyond 07777", *mode)
	}
	return *mode, nil
}

// ownerFor resolves an optional "user" field; nil means leave files to root.
func ownerFor(user flexString) (*account, error) {
	if user == "" {
		return nil, nil
	}
	acct, err := lookupUser(string(user))
	if err != nil {
		return nil, errorf(codeInvalidArgument, "%v", err)
	}
	return acct, nil
}

// makeParents creates dir and its missing ancestors (mode 0755, owned by
// owner when set), like mkdir -p.
func makeParents(dir string, owner *account) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return errorf(codeNotADirectory, "%s is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fsError(err)
	}
	if err := makeParents(filepath.Dir(dir), owner); err != nil {
		return err
	}
	if err := createDir(dir, 0o755, owner); err != nil && !errors.Is(err, fs.ErrExist) {
		return fsError(err)
	}
	return nil
}

func createDir(path string, mode uint32, owner *account) error {
	if err := os.Mkdir(path, 0o700); err != nil {
		return err
	}
	if err := setModeOwner(path, mode, owner); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// setModeOwner applies raw mode bits exactly (no umask; os.FileMode would
// drop setuid/setgid/sticky given as plain octal) and chowns to owner.
func setModeOwner(path string, mode uint32, owner *account) error {
	if err := syscall.Chmod(path, mode); err != nil {
		return &fs.PathError{Op: "chmod", Path: path, Err: err}
	}
	if owner != nil {
		if err := os.Lchown(path, int(owner.uid), int(owner.gid)); err != nil {
			return err
		}
	}
	return nil
}

// fsError maps a file system error to its protocol error code.
func fsError(err error) error {
	var apiErr *apiError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	code := codeIOError
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT:
			code = codeNotFound
		case syscall.EEXIST:
			code = codeAlreadyExists
		case syscall.EACCES, syscall.EPERM, syscall.EROFS:
			code = codePermissionDenied
		case syscall.ENOTDIR:
			code = codeNotADirectory
		case syscall.EISDIR:
			code = codeIsADirectory
		case syscall.ENOTEMPTY:
			code = codeNotEmpty
		case syscall.ENOSPC, syscall.EDQUOT:
			code = codeNoSpace
		case syscall.ENAMETOOLONG:
			code = codeNameTooLong
		case syscall.EBUSY, syscall.ETXTBSY:
			code = codeBusy
		case syscall.EXDEV:
			code = codeCrossDevice
		case syscall.ELOOP:
			code = codeSymlinkLoop
		case syscall.EFBIG:
			code = codeTooLarge
		}
	}
	return &apiError{Code: code, Message: err.Error()}
}
