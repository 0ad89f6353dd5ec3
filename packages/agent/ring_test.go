package main

import (
	"bytes"
	"math/rand"
	"testing"
	"time"
)

type taggedByte struct {
	fd int
	b  byte
}

func ringContent(r *ring) []taggedByte {
	var out []taggedByte
	r.each(func(fd int, data []byte) {
		for _, b := range data {
			out = append(out, taggedByte{fd, b})
		}
	})
	return out
}

func TestRingKeepsRecordsInOrder(t *testing.T) {
	r := newRing(1 << 20)
	r.write(1, []byte("out1"))
	r.write(2, []byte("err"))
	r.write(1, []byte("out2"))
	var got []string
	r.each(func(fd int, data []byte) { got = append(got, string(rune('0'+fd))+":"+string(data)) })
	if want := "1:out1 2:err 1:out2"; join(got) != want {
		t.Fatalf("records = %q, want %q", join(got), want)
	}
	if len(r.buf) > ringMinAlloc {
		t.Fatalf("buffer grew to %d bytes for 11 bytes of output", len(r.buf))
	}
}

func TestRingGrowsLazily(t *testing.T) {
	var r ring = newRing(1 << 20)
	if r.buf != nil {
		t.Fatal("ring allocated before the first write")
	}
	r.write(1, make([]byte, 10000))
	if len(r.buf) >= 1<<20 || len(r.buf) < 10000+ringHeader {
		t.Fatalf("after 10000 bytes the buffer is %d bytes", len(r.buf))
	}
	r.compact()
	if len(r.buf) != r.used {
		t.Fatalf("compact left %d bytes for %d used", len(r.buf), r.used)
	}
	r.write(2, []byte("more")) // grows again after compacting
	if got := ringContent(&r); len(got) != 10004 || got[10003] != (taggedByte{2, 'e'}) {
		t.Fatalf("content after compact and write: %d bytes", len(got))
	}
}

func TestRingOversizedWriteKeepsTail(t *testing.T) {
	r := newRing(1000)
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(i)
	}
	r.write(1, data)
	var got []byte
	r.each(func(fd int, d []byte) { got = append(got, d...) })
	if !bytes.Equal(got, data[len(data)-len(got):]) || len(got) < 1000-2*ringHeader {
		t.Fatalf("kept %d bytes, not the tail", len(got))
	}
}

// TestRingRandomized checks, against a model, that the ring always holds an
// exact suffix of everything written, stays within max, and evicts no more
// than it must.
func TestRingRandomized(t *testing.T) {
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for _, max := range []int{64, 1000, 70000, 1 << 20} {
		r := newRing(max)
		var written []taggedByte
		iterations := 300
		if max > 100000 {
			iterations = 40
		}
		for i := 0; i < iterations; i++ {
			n := rng.Intn(max/4 + 1)
			if rng.Intn(20) == 0 {
				n = rng.Intn(3 * max)
			}
			fd := 1 + rng.Intn(2)
			p := make([]byte, n)
			rng.Read(p)
			r.write(fd, p)
			for _, b := range p {
				written = append(written, taggedByte{fd, b})
			}
			if len(written) > 2*max {
				written = append([]taggedByte(nil), written[len(written)-max:]...)
			}

			if r.used > max || len(r.buf) > max {
				t.Fatalf("max %d: used %d, buffer %d", max, r.used, len(r.buf))
			}
			got := ringContent(&r)
			suffix := written[len(written)-len(got):]
			for j := range got {
				if got[j] != suffix[j] {
					t.Fatalf("max %d, write %d: content is not a suffix of the output (byte %d)", max, i, j)
				}
			}
			if len(written) >= max && r.used < max-ringHeader {
				t.Fatalf("max %d: only %d bytes used after eviction", max, r.used)
			}
		}
	}
}

func join(s []string) string {
	var b bytes.Buffer
	for i, v := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(v)
	}
	return b.String()
}
