package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log"
)

// lineReader splits the request stream into lines of at most max bytes.
type lineReader struct {
	br  *bufio.Reader
	max int
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its '\n', in a fresh slice the caller
// owns. Over-long lines are logged and skipped without being buffered, so a
// misbehaving peer cannot make the agent allocate more than max bytes. A final
// line without '\n' is still returned; after it, next returns the read error
// (io.EOF at the end of the stream).
func (lr *lineReader) next() ([]byte, error) {
	var line []byte
	skipped := 0 // bytes of an over-long line thrown away so far
	for {
		chunk, err := lr.br.ReadSlice('\n')
		complete := err == nil
		if complete {
			chunk = chunk[:len(chunk)-1]
		}
		if skipped == 0 && len(line)+len(chunk) <= lr.max {
			line = append(line, chunk...)
		} else {
			skipped += len(line) + len(chunk)
			line = nil
		}
		switch {
		case complete:
			if skipped == 0 {
				return line, nil
			}
			log.Printf("discarding over-long line (%d bytes, limit %d)", skipped, lr.max)
			skipped = 0
		case err == bufio.ErrBufferFull:
			// The line continues in the next chunk.
		default: // io.EOF or a read error
			if skipped > 0 {
				log.Printf("discarding over-long final line (%d bytes, limit %d)", skipped, lr.max)
			} else if len(line) > 0 {
				return line, nil
			}
			return nil, err
		}
	}
}

// lineWriter owns the agent's stdout: a single goroutine writes queued lines,
// so concurrent producers never interleave their output.
type lineWriter struct {
	queue chan []byte
}

// writeQueueLen bounds the encoded lines waiting for stdout. When the daemon
// reads slowly, send blocks, which in turn stops the pipe readers: backpressure
// instead of unbounded buffering.
const writeQueueLen = 32

func newLineWriter(w io.Writer) *lineWriter {
	lw := &lineWriter{queue: make(chan []byte, writeQueueLen)}
	go lw.loop(w)
	return lw
}

// send encodes v as one JSON line and queues it. Lines queued by one goroutine
// are written in the order they were queued.
func (lw *lineWriter) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Printf("cannot encode %T: %v", v, err)
		return
	}
	lw.queue <- append(b, '\n')
}

func (lw *lineWriter) loop(w io.Writer) {
	bw := bufio.NewWriterSize(w, 32<<10)
	failing := false
	for line := range lw.queue {
		if len(line) > largeMessage {
			trimSoon()
		}
		_, err := bw.Write(line)
		if err == nil && len(lw.queue) == 0 {
			err = bw.Flush()
		}
		switch {
		case err != nil:
			// The daemon may be gone or the channel broken; keep draining the
			// queue so producers never block forever, and recover if stdout
			// starts working again (e.g. after a restore).
			if !failing {
				log.Printf("writing to stdout: %v (dropping output until it recovers)", err)
				failing = true
			}
			bw.Reset(w)
		case failing && len(lw.queue) == 0:
			log.Printf("stdout writable again")
			failing = false
		}
	}
}
