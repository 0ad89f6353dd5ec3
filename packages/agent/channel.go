package main

import (
	"bufio"
	"encoding/binary"
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

// inMessage is one request read from the daemon: a JSON line, or a frame's
// JSON header and payload.
type inMessage struct {
	body    []byte
	payload []byte
	framed  bool
}

// messageReader reads JSON lines and binary frames from one stream.
type messageReader struct {
	br    *bufio.Reader
	lines *lineReader
}

func newMessageReader(r io.Reader, maxLine int) *messageReader {
	lr := newLineReader(r, maxLine)
	return &messageReader{br: lr.br, lines: lr}
}

// next returns the next message. A frame whose lengths break the limits (or
// whose header is empty) means the stream lost step: a daemon killed in the
// middle of writing a message leaves the rest of it missing, and the next
// daemon's bytes are read in its place. Such a frame is never skipped by its
// lengths (they are garbage); the reader drops everything through the next
// newline instead, which the daemon's resync padding provides (see
// docs/agent-protocol.md, "Resync after a daemon restart").
func (mr *messageReader) next() (inMessage, error) {
	for {
		first, err := mr.br.Peek(1)
		if err != nil {
			return inMessage{}, err
		}
		if first[0] != frameMarker {
			line, err := mr.lines.next()
			return inMessage{body: line}, err
		}
		var prefix [framePrefixLen]byte
		if _, err := io.ReadFull(mr.br, prefix[:]); err != nil {
			return inMessage{}, unexpected(err)
		}
		headLen := int64(binary.BigEndian.Uint32(prefix[1:5]))
		dataLen := int64(binary.BigEndian.Uint32(prefix[5:9]))
		if headLen == 0 || headLen > maxFrameHeader || dataLen > maxFrameData {
			log.Printf("the request stream lost step (a frame of %d+%d bytes); skipping to the next line", headLen, dataLen)
			if err := mr.skipLine(); err != nil {
				return inMessage{}, err
			}
			continue
		}
		m := inMessage{body: make([]byte, headLen), payload: make([]byte, dataLen), framed: true}
		if _, err := io.ReadFull(mr.br, m.body); err != nil {
			return inMessage{}, unexpected(err)
		}
		if _, err := io.ReadFull(mr.br, m.payload); err != nil {
			return inMessage{}, unexpected(err)
		}
		return m, nil
	}
}

// skipLine drops bytes through the next newline, without buffering them.
func (mr *messageReader) skipLine() error {
	for {
		_, err := mr.br.ReadSlice('\n')
		if err != bufio.ErrBufferFull {
			return err
		}
	}
}

// unexpected reports a stream that ends inside a frame.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendFramePrefix appends a frame's fixed prefix to b.
func appendFramePrefix(b []byte, headLen, dataLen int) []byte {
	b = append(b, frameMarker)
	b = binary.BigEndian.AppendUint32(b, uint32(headLen))
	return binary.BigEndian.AppendUint32(b, uint32(dataLen))
}

// outMessage is one queued message: a JSON line, or a frame's prefix and
// header (head) followed by its payload.
type outMessage struct {
	head    []byte
	payload []byte
}

// lineWriter owns the agent's stdout: a single goroutine writes queued
// messages, so concurrent producers never interleave their output.
type lineWriter struct {
	queue chan outMessage
}

// writeQueueLen bounds the encoded messages waiting for stdout. When the
// daemon reads slowly, send blocks, which in turn stops the pipe readers:
// backpressure instead of unbounded buffering.
const writeQueueLen = 32

func newLineWriter(w io.Writer) *lineWriter {
	lw := &lineWriter{queue: make(chan outMessage, writeQueueLen)}
	go lw.loop(w)
	return lw
}

// send encodes v as one JSON line and queues it. Messages queued by one
// goroutine are written in the order they were queued.
func (lw *lineWriter) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Printf("cannot encode %T: %v", v, err)
		return
	}
	lw.queue <- outMessage{head: append(b, '\n')}
}

// sendFrame queues v as a frame's JSON header, with payload after it.
func (lw *lineWriter) sendFrame(v any, payload []byte) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Printf("cannot encode %T: %v", v, err)
		return
	}
	if len(b) > maxFrameHeader || len(payload) > maxFrameData {
		log.Printf("cannot send a frame of %d+%d bytes", len(b), len(payload))
		return
	}
	head := appendFramePrefix(make([]byte, 0, framePrefixLen+len(b)), len(b), len(payload))
	lw.queue <- outMessage{head: append(head, b...), payload: payload}
}

func (lw *lineWriter) loop(w io.Writer) {
	bw := bufio.NewWriterSize(w, 32<<10)
	failing := false
	for m := range lw.queue {
		if len(m.head)+len(m.payload) > largeMessage {
			trimSoon()
		}
		_, err := bw.Write(m.head)
		if err == nil && len(m.payload) > 0 {
			_, err = bw.Write(m.payload)
		}
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
