package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// frameBytes builds a frame by hand, byte by byte as docs/agent-protocol.md
// lays it out, so the reader is checked against the document, not itself.
func frameBytes(header string, payload []byte) []byte {
	b := []byte{0}
	n := len(header)
	b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	p := len(payload)
	b = append(b, byte(p>>24), byte(p>>16), byte(p>>8), byte(p))
	return append(append(b, header...), payload...)
}

func TestMessageReaderMixesLinesAndFrames(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(`{"op":"a"}` + "\n")
	in.Write(frameBytes(`{"op":"b"}`, []byte("raw\nbytes\x00")))
	in.Write(frameBytes(`{"op":"c"}`, nil))
	in.WriteString("\n" + `{"op":"d"}` + "\n")
	// A 16-byte buffer (bufio's minimum) splits frames across reads.
	mr := &messageReader{br: bufio.NewReaderSize(&in, 16)}
	mr.lines = &lineReader{br: mr.br, max: 100}

	type got struct {
		body, payload string
		framed        bool
	}
	var msgs []got
	for {
		m, err := mr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, got{string(m.body), string(m.payload), m.framed})
	}
	want := []got{
		{`{"op":"a"}`, "", false},
		{`{"op":"b"}`, "raw\nbytes\x00", true},
		{`{"op":"c"}`, "", true},
		{"", "", false},
		{`{"op":"d"}`, "", false},
	}
	if len(msgs) != len(want) {
		t.Fatalf("messages = %+v, want %+v", msgs, want)
	}
	for i := range want {
		if msgs[i] != want[i] {
			t.Fatalf("message %d = %+v, want %+v", i, msgs[i], want[i])
		}
	}
}

func TestMessageReaderSkipsToTheNextLineOnBadLengths(t *testing.T) {
	var in bytes.Buffer
	// Header over the limit, payload over the limit, empty header: the
	// lengths are garbage, so each drops everything through the next newline.
	in.Write(frameBytes(strings.Repeat(" ", maxFrameHeader+1), []byte("xyz\n")))
	in.WriteString(`{"id":1}` + "\n")
	oversize := frameBytes(`{"id":2}`, []byte("x\n"))
	binary.BigEndian.PutUint32(oversize[5:9], maxFrameData+1)
	in.Write(oversize)
	in.WriteString(`{"id":3}` + "\n")
	in.Write([]byte{frameMarker, 0, 0, 0, 0, 0, 0, 0, 0})
	in.WriteString("rest of a line\n" + `{"id":4}` + "\n")
	mr := newMessageReader(&in, 100)
	for _, want := range []string{`{"id":1}`, `{"id":3}`, `{"id":4}`} {
		m, err := mr.next()
		if err != nil || string(m.body) != want || m.framed {
			t.Fatalf("got %q framed %v, %v; want %s", m.body, m.framed, err, want)
		}
	}
}

// A daemon killed mid-message leaves it torn; the next daemon sends 0xff
// padding, a newline and a ping. Wherever the tear was, the ping is read
// whole and nothing torn is acted on.
func TestResyncAfterATornMessage(t *testing.T) {
	frame := frameBytes(`{"id":9,"op":"write_chunk","handle":"h","crc":1234}`, bytes.Repeat([]byte("d"), 300))
	line := []byte(`{"id":8,"op":"ping"}` + "\n")
	padding := append(bytes.Repeat([]byte{0xff}, maxFrameHeader+len(frame)+framePrefixLen), '\n')
	for _, torn := range [][]byte{frame, line} {
		for cut := 1; cut < len(torn); cut++ {
			var in bytes.Buffer
			in.Write(torn[:cut])
			in.Write(padding)
			in.WriteString(`{"id":77,"op":"ping"}` + "\n")
			mr := newMessageReader(&in, 1<<20)
			found := false
			for !found {
				m, err := mr.next()
				if err != nil {
					t.Fatalf("cut %d: the resync ping was never read: %v", cut, err)
				}
				found = string(m.body) == `{"id":77,"op":"ping"}`
				if !found && m.framed && len(m.payload) > 0 && len(m.body) > 0 && m.body[0] == '{' && cut > len(torn)-len(m.payload) {
					// A frame torn in its payload is read with padding in it: its crc no longer matches.
					if crc32.ChecksumIEEE(m.payload) == 1234 {
						t.Fatalf("cut %d: a torn frame passes its crc", cut)
					}
				}
			}
		}
	}
}

func TestMessageReaderTruncatedFrame(t *testing.T) {
	full := frameBytes(`{"op":"x"}`, []byte("payload"))
	for cut := 1; cut < len(full); cut++ {
		mr := newMessageReader(bytes.NewReader(full[:cut]), 100)
		if _, err := mr.next(); err != io.ErrUnexpectedEOF {
			t.Fatalf("cut at %d: err = %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
}

func TestFramedWriteAndRead(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	content := make([]byte, 3*maxFrameData+12345)
	rand.Read(content)

	var open struct{ Handle string }
	h.ok(map[string]any{"op": "write_open", "path": path}, &open)
	// Pipelined: every chunk is sent before any reply is read.
	var replies []<-chan message
	for off := 0; off < len(content); off += maxFrameData {
		end := min(off+maxFrameData, len(content))
		replies = append(replies, h.startFrame(map[string]any{"op": "write_chunk", "handle": open.Handle}, content[off:end]))
	}
	for _, ch := range replies {
		if m := h.wait(ch); !m.OK || !m.framed {
			t.Fatalf("write_chunk = ok %v framed %v error %+v", m.OK, m.framed, m.Error)
		}
	}
	var closed fileInfo
	h.ok(map[string]any{"op": "write_close", "handle": open.Handle}, &closed)
	if closed.Size != int64(len(content)) {
		t.Fatalf("size = %d, want %d", closed.Size, len(content))
	}
	if onDisk, _ := os.ReadFile(path); !bytes.Equal(onDisk, content) {
		t.Fatal("file content differs")
	}

	// Framed reads: the data is the payload; the JSON result has no data.
	var got []byte
	var reads []<-chan message
	for off := 0; off < len(content); off += maxFrameData {
		reads = append(reads, h.startFrame(map[string]any{"op": "read", "path": path, "offset": off, "length": maxFrameData}, nil))
	}
	for i, ch := range reads {
		m := h.wait(ch)
		var res map[string]any
		if err := json.Unmarshal(m.Result, &res); err != nil || !m.OK || !m.framed {
			t.Fatalf("read = ok %v framed %v %s", m.OK, m.framed, m.Result)
		}
		if _, has := res["data"]; has || res["size"] != float64(len(content)) || res["eof"] != (i == len(reads)-1) {
			t.Fatalf("read %d result = %s", i, m.Result)
		}
		got = append(got, m.payload...)
	}
	if !bytes.Equal(got, content) {
		t.Fatal("read content differs")
	}

	// The same op as a line still answers base64 in JSON, at most maxData.
	m := h.call(map[string]any{"op": "read", "path": path, "offset": 0, "length": maxData})
	var line struct{ Data []byte }
	if json.Unmarshal(m.Result, &line); m.framed || !bytes.Equal(line.Data, content[:maxData]) {
		t.Fatalf("line read: framed %v, %d bytes", m.framed, len(line.Data))
	}
	h.fails(map[string]any{"op": "read", "path": path, "length": maxData + 1}, codeTooLarge)
}

func TestFramedErrorsAndLimits(t *testing.T) {
	h := newHarness(t)
	// An error to a framed request is a frame without payload.
	m := h.wait(h.startFrame(map[string]any{"op": "read", "path": "/nonexistent/x"}, nil))
	if m.OK || !m.framed || m.Error == nil || m.Error.Code != codeNotFound || len(m.payload) != 0 {
		t.Fatalf("read missing = %+v", m)
	}
	// A payload whose crc does not match (a torn frame) is refused.
	m = h.wait(h.startFrame(map[string]any{"op": "write_chunk", "handle": "h1", "crc": 1}, []byte("x")))
	if m.OK || m.Error == nil || m.Error.Code != codeInvalidArgument {
		t.Fatalf("torn frame = %+v", m)
	}
	// Data both in the header and as payload is refused.
	m = h.wait(h.startFrame(map[string]any{"op": "write_chunk", "handle": "h1", "data": "eA=="}, []byte("x")))
	if m.OK || m.Error == nil || m.Error.Code != codeInvalidArgument {
		t.Fatalf("data in header = %+v", m)
	}
	// A header that is not JSON, with an id nobody can read: ignored.
	if _, err := h.in.Write(frameBytes("{not json", []byte("zzz"))); err != nil {
		t.Fatal(err)
	}
	var ping struct {
		Version  string
		Protocol int
	}
	h.ok(map[string]any{"op": "ping"}, &ping)
	if ping.Version != version || ping.Protocol != protocolVersion {
		t.Fatalf("ping = %+v", ping)
	}
}

func TestFramedStdin(t *testing.T) {
	h := newHarness(t)
	pid := h.exec(map[string]any{"cmd": []string{"/bin/sh", "-c", "wc -c"}, "stdin": true, "subscribe": true})
	payload := bytes.Repeat([]byte{0, '\n', 0xff}, 100000)
	if m := h.wait(h.startFrame(map[string]any{"op": "stdin", "pid": pid, "eof": true}, payload)); !m.OK {
		t.Fatalf("stdin = %+v", m.Error)
	}
	r := h.collect(pid)
	if strings.TrimSpace(r.stdout) != "300000" || r.code != 0 {
		t.Fatalf("wc -c = %q, code %d", r.stdout, r.code)
	}
}

func TestLineWriterFramesStayWhole(t *testing.T) {
	var out syncBuffer
	lw := newLineWriter(&out)
	payload := bytes.Repeat([]byte("\n"), 100000)
	lw.sendFrame(reply{ID: 7, OK: true}, payload)
	lw.send(helloEvent{Ev: "after"})
	want := append(frameBytes(`{"id":7,"ok":true}`, payload), []byte(`{"ev":"after","version":"","protocol":0}`+"\n")...)
	eventually(t, "both messages are written", func() bool { return out.String() == string(want) })
	time.Sleep(10 * time.Millisecond)
	if out.String() != string(want) {
		t.Fatal("unexpected bytes after the messages")
	}
}
