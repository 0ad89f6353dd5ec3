// Command stasis-agent is the init process (PID 1) of every Stasis sandbox.
// It serves the protocol of docs/agent-protocol.md over stdin and stdout.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
)

const version = "0.4.1"

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	pipeSize := flag.Int("pipe-size", 0, "on the host: set the capacity of the pipes on stdin and stdout to this many bytes, and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	if *pipeSize > 0 {
		if err := widenPipes(*pipeSize, 0, 1); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	log.SetFlags(0)
	log.SetPrefix("stasis-agent: ")
	tuneMemory()
	guardChannel()
	limitCommands()
	reserveThreads(spareThreads)

	// A broken stdout must return EPIPE rather than kill the agent. Go
	// turns SIGPIPE on fd 1 into an exit unless SIGPIPE is handled; a handler
	// (unlike signal.Ignore, whose SIG_IGN would be inherited across exec)
	// leaves child processes with the default SIGPIPE behaviour. Signals
	// arriving on the full, unread channel are simply dropped.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	if os.Getpid() != 1 {
		if err := becomeSubreaper(); err != nil {
			log.Printf("cannot become a child subreaper: %v", err)
		}
	}

	err := NewAgent(os.Stdout).Serve(os.Stdin)
	// Exiting would kill the sandbox (PID 1) and every process in it.
	log.Printf("stdin closed (%v); idling, processes keep running", err)
	select {}
}

// guardChannel keeps the sandbox's processes off the agent's stdin and
// stdout, the daemon's channel: /proc/1/fd/* of a non-dumpable process opens
// only for a caller with CAP_SYS_PTRACE, which no command gets (the sandbox's
// capability set lacks it). The flag is the process's, not inherited across
// exec, so commands stay dumpable.
func guardChannel() {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		log.Printf("cannot make the agent non-dumpable (its channel stays reachable through /proc/1/fd): %v", errno)
	}
}
