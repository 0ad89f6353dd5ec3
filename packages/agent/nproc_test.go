package main

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// The limit changes the process's capabilities and rlimits for good, so it is
// applied in a child: this test binary run again with nprocHelperEnv set.
const nprocHelperEnv = "STASIS_TEST_NPROC_HELPER"

func TestNprocLimitHelper(t *testing.T) {
	if os.Getenv(nprocHelperEnv) == "" {
		t.Skip("run by TestNprocLimit")
	}
	if err := applyNprocLimit(os.Getenv(nprocLimitEnv)); err != nil {
		os.Stdout.WriteString("apply: " + err.Error() + "\n")
	}
	// What a command started now sees.
	out, err := exec.Command("/bin/sh", "-c", "ulimit -u; grep -E '^Cap(Eff|Bnd)' /proc/self/status").CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v: %s", err, out)
	}
	os.Stdout.Write(out)
	if hasEffectiveCap(capSysResource) {
		os.Stdout.WriteString("agent-exempt=yes\n")
	}
}

// runNprocHelper starts the helper through the agent's reaper: once another
// test has started it, the reaper's wait4(-1) reaps every child of this test
// process, and an exec.Cmd's own wait would fail with ECHILD.
func runNprocHelper(t *testing.T, limit string) string {
	t.Helper()
	startReaper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	args := []string{os.Args[0], "-test.run=^TestNprocLimitHelper$", "-test.v"}
	env := append(os.Environ(), nprocHelperEnv+"=1", nprocLimitEnv+"="+limit)
	status := make(chan syscall.WaitStatus, 1)
	_, err = children.start(func() (int, error) {
		return syscall.ForkExec(args[0], args, &syscall.ProcAttr{Env: env, Files: []uintptr{0, w.Fd(), w.Fd()}})
	}, status)
	w.Close()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	out, _ := io.ReadAll(r)
	if ws := <-status; ws.ExitStatus() != 0 {
		t.Fatalf("helper: exit %d\n%s", ws.ExitStatus(), out)
	}
	return string(out)
}

func TestNprocLimit(t *testing.T) {
	out := runNprocHelper(t, "77")
	if !hasEffectiveCap(capSysResource) {
		// An agent the limit would hold too must not set it.
		if !strings.Contains(out, "lacks CAP_SYS_RESOURCE") || strings.Contains(out, "\n77\n") {
			t.Errorf("without CAP_SYS_RESOURCE the limit was applied anyway:\n%s", out)
		}
		return
	}
	if strings.Contains(out, "AllThreadsSyscall") || strings.Contains(out, "not supported") {
		t.Skipf("this test binary cannot drop capabilities on all threads (cgo): %s", out)
	}
	if !strings.Contains(out, "\n77\n") {
		t.Errorf("a command's RLIMIT_NPROC is not 77:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "CapEff:") || strings.HasPrefix(line, "CapBnd:") {
			mask := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(line, "CapEff:"), "CapBnd:"))
			if capBit(t, mask, capSysResource) || capBit(t, mask, capSetpcap) {
				t.Errorf("a command keeps CAP_SYS_RESOURCE or CAP_SETPCAP: %s", line)
			}
		}
	}
	if !strings.Contains(out, "agent-exempt=yes") {
		t.Errorf("the agent lost CAP_SYS_RESOURCE:\n%s", out)
	}
}

func TestNprocLimitRefusesBadValues(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"0", "-3", "lots", "99999999999"} {
		if err := applyNprocLimit(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func capBit(t *testing.T, hexMask string, c uint) bool {
	t.Helper()
	var mask uint64
	for _, r := range hexMask {
		mask <<= 4
		switch {
		case r >= '0' && r <= '9':
			mask |= uint64(r - '0')
		case r >= 'a' && r <= 'f':
			mask |= uint64(r-'a') + 10
		default:
			t.Fatalf("bad mask %q", hexMask)
		}
	}
	return mask&(1<<c) != 0
}
