package main

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// Linux signal names, indexed by number.
var signalNames = [...]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
	7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
	13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
	18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU",
	23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF",
	28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}

const maxSignal = 64

func signalName(sig syscall.Signal) string {
	if int(sig) > 0 && int(sig) < len(signalNames) {
		return signalNames[sig]
	}
	return fmt.Sprintf("SIG%d", int(sig)) // real-time signals
}

// parseSignal accepts a name ("SIGTERM", also "TERM") or a number.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("signal number %d out of range 1..%d", n, maxSignal)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	for n, known := range signalNames {
		if known != "" && known == name {
			return syscall.Signal(n), nil
		}
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
