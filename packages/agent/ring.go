package main

// ring keeps the most recent output of a process, tagged by fd, in at most max
// bytes. Each write is stored inline as a record: a 3-byte header (fd, 16-bit
// length) followed by the data. The backing array grows on demand up to max,
// so a quiet process costs almost nothing; once full, the oldest bytes are
// evicted (the oldest record is trimmed, not necessarily dropped whole), so
// what remains is always an exact suffix of the output.
type ring struct {
	max   int
	buf   []byte
	start int // index in buf of the oldest record's header
	used  int // bytes in use, headers included
}

const (
	ringHeader    = 3
	ringMaxRecord = 0xffff // fits the 16-bit length
	ringMinAlloc  = 4 << 10
)

func newRing(max int) ring { return ring{max: max} }

// write appends p as output of fd.
func (r *ring) write(fd int, p []byte) {
	room := r.max - ringHeader
	if room <= 0 {
		return
	}
	if len(p) > room {
		p = p[len(p)-room:] // only the newest bytes could survive anyway
	}
	for len(p) > 0 {
		n := min(len(p), ringMaxRecord, room)
		r.reserve(ringHeader + n)
		end := r.start + r.used
		r.putHeader(end, fd, n)
		r.copyIn(end+ringHeader, p[:n])
		r.used += ringHeader + n
		p = p[n:]
	}
}

// each calls fn for every record, oldest first. data is a fresh copy.
func (r *ring) each(fn func(fd int, data []byte)) {
	for off, left := r.start, r.used; left > 0; {
		fd, n := r.header(off)
		data := make([]byte, n)
		r.copyOut(data, off+ringHeader)
		fn(fd, data)
		off += ringHeader + n
		left -= ringHeader + n
	}
}

// compact shrinks the backing array to the bytes in use; used once a process
// has exited and its output is unlikely to grow.
func (r *ring) compact() {
	if len(r.buf) > r.used {
		r.resize(r.used)
	}
}

// reserve makes room for need more bytes, growing the buffer first and
// evicting the oldest output once it has reached max.
func (r *ring) reserve(need int) {
	if r.used+need <= len(r.buf) {
		return
	}
	if len(r.buf) < r.max {
		r.resize(min(max(2*len(r.buf), r.used+need, ringMinAlloc), r.max))
		if r.used+need <= len(r.buf) {
			return
		}
	}
	excess := r.used + need - len(r.buf)
	for excess > 0 {
		fd, n := r.header(r.start)
		if excess < n {
			// Drop the first excess bytes of the record and move its header
			// forward over them.
			r.start = (r.start + excess) % len(r.buf)
			r.putHeader(r.start, fd, n-excess)
			r.used -= excess
			return
		}
		r.start = (r.start + ringHeader + n) % len(r.buf)
		r.used -= ringHeader + n
		excess -= ringHeader + n
	}
}

func (r *ring) resize(size int) {
	var buf []byte
	if size > 0 {
		buf = make([]byte, size)
		r.copyOut(buf[:r.used], r.start)
	}
	r.buf, r.start = buf, 0
}

func (r *ring) header(off int) (fd, n int) {
	var h [ringHeader]byte
	r.copyOut(h[:], off)
	return int(h[0]), int(h[1])<<8 | int(h[2])
}

func (r *ring) putHeader(off, fd, n int) {
	r.copyIn(off, []byte{byte(fd), byte(n >> 8), byte(n)})
}

// copyIn and copyOut move bytes at a (possibly wrapping) position.
func (r *ring) copyIn(off int, p []byte) {
	off %= len(r.buf)
	n := copy(r.buf[off:], p)
	copy(r.buf, p[n:])
}

func (r *ring) copyOut(dst []byte, off int) {
	if len(dst) == 0 {
		return
	}
	off %= len(r.buf)
	n := copy(dst, r.buf[off:])
	copy(dst[n:], r.buf)
}
