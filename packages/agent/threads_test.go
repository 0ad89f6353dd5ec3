package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func threadCount(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Threads:") {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "Threads:")))
			return n
		}
	}
	t.Fatal("no Threads: line")
	return 0
}

func TestReserveThreadsLeavesThemToTheRuntime(t *testing.T) {
	reserveThreads(16)
	if n := threadCount(t); n < 16 {
		t.Fatalf("only %d threads after reserving 16", n)
	}
	// Reserving again reuses the idle ones: the count does not grow by another 16.
	before := threadCount(t)
	reserveThreads(16)
	if after := threadCount(t); after > before+2 {
		t.Fatalf("reserving again made new threads: %d -> %d", before, after)
	}
}
