package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func (a *Agent) exec(c *call, req *request) (any, error) {
	if len(req.Cmd) == 0 {
		return nil, errorf(codeInvalidArgument, "cmd must be a non-empty array")
	}
	for _, arg := range req.Cmd {
		if strings.IndexByte(arg, 0) >= 0 {
			return nil, errorf(codeInvalidArgument, "cmd contains a NUL byte")
		}
	}
	window := int64(defaultWindow)
	if req.Window != nil {
		if *req.Window < 0 {
			return nil, errorf(codeInvalidArgument, "window must not be negative")
		}
		window = *req.Window
	}
	userSpec, acct, err := requestUser(req.User)
	if err != nil {
		return nil, err
	}
	if req.Pty != nil {
		if err := req.Pty.validate(); err != nil {
			return nil, err
		}
		if _, ok := req.Env["TERM"]; !ok {
			req.Env = withVar(req.Env, "TERM", "xterm-256color")
		}
	}
	env, err := buildEnv(req.Env, acct)
	if err != nil {
		return nil, err
	}
	cwd := req.Cwd
	switch {
	case cwd == "":
		cwd = defaultCwd(acct)
	case !filepath.IsAbs(cwd) || strings.IndexByte(cwd, 0) >= 0:
		return nil, errorf(codeInvalidArgument, "cwd must be an absolute path")
	default:
		// Checked here only for a clearer message than chdir's in the child.
		if fi, err := os.Stat(cwd); err != nil {
			return nil, errorf(codeExecFailed, "cwd: %v", err)
		} else if !fi.IsDir() {
			return nil, errorf(codeExecFailed, "cwd %s: not a directory", cwd)
		}
	}
	argv0, err := lookPath(req.Cmd[0], envValue(env, "PATH"))
	if err != nil {
		return nil, errorf(codeExecFailed, "%v", err)
	}

	// A terminal is always a new process; a piped one may be handed a spare shell.
	if req.Pty == nil {
		if sp := a.spares.take(req, userSpec, env, cwd, acct); sp != nil && a.claim(c, req, sp, window) {
			return nil, nil // replied by claim
		}
	}

	p := newProcess(a.out)
	p.cmd, p.tag, p.cwd, p.user = req.Cmd, req.Tag, cwd, userSpec
	p.subscribed, p.credit = req.Subscribe, window
	if req.Pty != nil {
		// On a new terminal (pty.go); its output and credit work as a piped process's, on fd 1.
		err = spawnPty(p, argv0, env, credentialFor(acct), *req.Pty)
	} else {
		err = spawn(p, argv0, env, credentialFor(acct), req.Stdin)
	}
	if err != nil {
		return nil, errorf(codeExecFailed, "%s: %v", req.Cmd[0], err)
	}
	a.procs.add(p)
	// Reply before starting the pumps, so the daemon learns the pid before
	// it sees any event for it.
	c.finish(struct {
		Pid int `json:"pid"`
	}{p.pid}, nil)
	p.run(a.procs.retire)
	return nil, nil
}

func withVar(vars map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(vars)+1)
	for key, val := range vars {
		out[key] = val
	}
	out[k] = v
	return out
}

// spawn starts the process described by p in its own process group, with
// fresh pipes for its stdio, and sets p.pid. The extra files become the
// child's fds 3, 4, ...; spawn closes them in the parent in any case.
func spawn(p *process, argv0 string, env []string, cred *syscall.Credential, withStdin bool, extra ...*os.File) (err error) {
	var childEnds, parentEnds []*os.File
	defer func() {
		closeAll(extra)
		closeAll(childEnds) // the child has its own copies
		if err != nil {
			closeAll(parentEnds)
		}
	}()

	// os.Pipe's ends are close-on-exec, so concurrent spawns cannot leak
	// them into each other's children; ForkExec dups the child's ends to
	// 0, 1, 2. The parent's ends stay non-blocking, which allows deadlines.
	if withStdin {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		childEnds, parentEnds = append(childEnds, r), append(parentEnds, w)
		p.stdin = w
	} else {
		devNull, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		childEnds = append(childEnds, devNull)
	}
	for i := range p.pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		childEnds, parentEnds = append(childEnds, w), append(parentEnds, r)
		p.pipes[i] = r
	}

	childEnds = append(childEnds, extra...)
	extra = nil // now closed with childEnds
	files := make([]uintptr, len(childEnds))
	for i, f := range childEnds {
		files[i] = f.Fd()
	}
	attr := &syscall.ProcAttr{
		Dir:   p.cwd,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: cred},
	}
	p.pid, err = children.start(func() (int, error) {
		return syscall.ForkExec(argv0, p.cmd, attr)
	}, p.status)
	return err
}

// defaultCwd is where a process of acct starts when no cwd is given: its
// home directory, or / when that is not a directory.
func defaultCwd(acct *account) string {
	if fi, err := os.Stat(acct.home); err == nil && fi.IsDir() {
		return acct.home
	}
	return "/"
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// credentialFor returns the credential to run as acct. An agent that is not
// root (development, tests) can only run processes as itself.
func credentialFor(acct *account) *syscall.Credential {
	if euid := os.Geteuid(); euid != 0 && uint32(euid) == acct.uid {
		return nil
	}
	return &syscall.Credential{Uid: acct.uid, Gid: acct.gid, Groups: acct.groups}
}

// buildEnv returns the process environment as sorted KEY=value strings:
// the requested variables, plus HOME, USER, LOGNAME and PATH when absent.
func buildEnv(vars map[string]string, acct *account) ([]string, error) {
	env := make(map[string]string, len(vars)+4)
	for k, v := range vars {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return nil, errorf(codeInvalidArgument, "invalid environment variable %q", k)
		}
		env[k] = v
	}
	setDefault := func(k, v string) {
		if _, ok := env[k]; !ok && v != "" {
			env[k] = v
		}
	}
	setDefault("HOME", acct.home)
	setDefault("USER", acct.name)
	setDefault("LOGNAME", acct.name)
	setDefault("PATH", defaultPath)

	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list, nil
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath resolves name through pathList unless it contains a slash.
// Relative PATH entries are skipped: they would be resolved against the
// agent's directory rather than the process's cwd.
func lookPath(name, pathList string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(pathList) {
		if !filepath.IsAbs(dir) {
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH", name)
}
