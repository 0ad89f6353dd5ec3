package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLineReaderLimits(t *testing.T) {
	const max = 40
	input := strings.Join([]string{
		"first",
		strings.Repeat("a", max),    // exactly at the limit: kept
		strings.Repeat("b", max+1),  // one over: dropped
		strings.Repeat("c", 10*max), // spans many buffer fills: dropped
		"",                          // empty line
		"after",
	}, "\n") + "\n" + strings.Repeat("d", 5*max) + "\nlast-without-newline"
	// A 16-byte buffer (bufio's minimum) exercises lines split across reads.
	lr := &lineReader{br: bufio.NewReaderSize(strings.NewReader(input), 16), max: max}

	var got []string
	for {
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(line))
	}
	want := []string{"first", strings.Repeat("a", max), "", "after", "last-without-newline"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines = %q, want %q", got, want)
	}
}

func TestLineReaderOverlongFinalLine(t *testing.T) {
	lr := &lineReader{br: bufio.NewReaderSize(strings.NewReader("ok\n"+strings.Repeat("x", 100)), 16), max: 10}
	if line, err := lr.next(); err != nil || string(line) != "ok" {
		t.Fatalf("next = %q, %v", line, err)
	}
	if line, err := lr.next(); err != io.EOF {
		t.Fatalf("next = %q, %v; want io.EOF", line, err)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLineWriterKeepsLinesWhole(t *testing.T) {
	var out syncBuffer
	lw := newLineWriter(&out)
	const writers, perWriter = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				lw.send(outEvent{Ev: "out", Pid: w, Fd: i, Data: bytes.Repeat([]byte{byte(w)}, 5000)})
			}
		}(w)
	}
	wg.Wait()
	lw.send(helloEvent{Ev: "done"})

	var lines []string
	for i := 0; i < 1000; i++ {
		lines = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if lines[len(lines)-1] == `{"ev":"done","version":"","protocol":0}` {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(lines) != writers*perWriter+1 {
		t.Fatalf("got %d lines, want %d", len(lines), writers*perWriter+1)
	}
	next := make([]int, writers) // per producer, lines must arrive in order
	for _, line := range lines[:len(lines)-1] {
		var ev outEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("corrupt line %.80q: %v", line, err)
		}
		if ev.Fd != next[ev.Pid] || len(ev.Data) != 5000 || ev.Data[0] != byte(ev.Pid) {
			t.Fatalf("unexpected event pid=%d seq=%d (want seq %d)", ev.Pid, ev.Fd, next[ev.Pid])
		}
		next[ev.Pid]++
	}
}

func TestSerializerOrdersPerKey(t *testing.T) {
	var s serializer
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	block := make(chan struct{})
	wg.Add(101)
	s.run("k", func() { <-block; wg.Done() }) // holds the key
	for i := 0; i < 100; i++ {
		i := i
		s.run("k", func() {
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
			wg.Done()
		})
	}
	done := make(chan struct{})
	s.run("other", func() { close(done) }) // other keys are not held up
	<-done
	close(block)
	wg.Wait()
	for i, v := range got {
		if v != i {
			t.Fatalf("order = %v", got)
		}
	}
}
