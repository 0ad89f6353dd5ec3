package main

import (
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// Pseudo-terminals with the standard library only: /dev/ptmx and its ioctls.
// A process started with a terminal has one master, which is both its output
// (read into the ring and sent as fd 1, like a pipe) and its input (stdin
// writes go to it); the child gets the slave as fds 0..2 and as its
// controlling terminal, in a session of its own.

// ptySize is exec's "pty" field and resize's size.
type ptySize struct {
	Cols int `json:"cols"`
	Rows int `json:"rows"`
}

const maxPtyDim = 4096

func (s *ptySize) validate() error {
	if s.Cols < 1 || s.Rows < 1 || s.Cols > maxPtyDim || s.Rows > maxPtyDim {
		return errorf(codeInvalidArgument, "pty size must be 1..%d columns and rows, got %dx%d", maxPtyDim, s.Cols, s.Rows)
	}
	return nil
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	// Through the raw conn, so the master stays non-blocking (Fd() would
	// make it blocking and take it out of the poller).
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// openPty returns a new terminal's master (non-blocking, in the poller) and
// its slave.
func openPty() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			master.Close()
		}
	}()
	var unlock int32
	if err = ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		return nil, nil, err
	}
	var n uint32
	if err = ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		return nil, nil, err
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	return master, slave, nil
}

func setWinsize(master *os.File, size ptySize) error {
	ws := struct{ Row, Col, X, Y uint16 }{uint16(size.Rows), uint16(size.Cols), 0, 0}
	return ioctl(master, syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
}

// spawnPty starts p on a new terminal of the given size. The master becomes
// p.pipes[0] (output, reported as fd 1) and p.stdin (input); p.pipes[1] stays
// nil.
func spawnPty(p *process, argv0 string, env []string, cred *syscall.Credential, size ptySize) error {
	master, slave, err := openPty()
	if err != nil {
		return err
	}
	defer slave.Close() // the child has its own copies
	if err := setWinsize(master, size); err != nil {
		master.Close()
		return err
	}
	if cred != nil {
		// The terminal belongs to its user, as login would make it (mesg, tty, stat).
		slave.Chown(int(cred.Uid), int(cred.Gid))
	}
	fd := slave.Fd()
	attr := &syscall.ProcAttr{
		Dir:   p.cwd,
		Env:   env,
		Files: []uintptr{fd, fd, fd},
		// A session of its own (so its process group is its pid, as for
		// pipes) with the slave as controlling terminal (child fd 0).
		Sys: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Credential: cred},
	}
	p.pid, err = children.start(func() (int, error) {
		return syscall.ForkExec(argv0, p.cmd, attr)
	}, p.status)
	if err != nil {
		master.Close()
		return err
	}
	p.pty, p.pipes[0], p.stdin = master, master, master
	return nil
}

// resize sets a terminal's size; the kernel sends SIGWINCH to its
// foreground process group.
func (a *Agent) resize(c *call, req *request) (any, error) {
	p, err := a.procs.get(req.Pid)
	if err != nil {
		return nil, err
	}
	if p.pty == nil {
		return nil, errorf(codeInvalidArgument, "process %d has no terminal", p.pid)
	}
	size := ptySize{Cols: req.Cols, Rows: req.Rows}
	if err := size.validate(); err != nil {
		return nil, err
	}
	if err := setWinsize(p.pty, size); err != nil {
		return nil, errorf(codeNoSuchProcess, "process %d's terminal is closed: %v", p.pid, err)
	}
	return empty{}, nil
}
