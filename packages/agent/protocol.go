package main

import (
	"encoding/json"
	"fmt"
)

// Wire types of docs/agent-protocol.md (protocol version 2: version 1's JSON
// lines, plus binary frames; 3 adds terminals and file watches).

const protocolVersion = 3

const (
	maxLineSize = 4 << 20 // longest accepted request line, excluding '\n'
	maxData     = 1 << 20 // most decoded bytes carried by one JSON message (base64 "data")
)

// Binary frames: frameMarker, the header length and the payload length (both
// uint32 big-endian), the JSON header, then the payload, which stands for the
// message's "data" (a reply's "result.data"). A JSON line never starts with
// a NUL byte, so the first byte of a message tells the two apart.
const (
	frameMarker    = 0x00
	framePrefixLen = 9
	maxFrameHeader = 64 << 10 // longest JSON header of a frame
	maxFrameData   = 4 << 20  // largest payload of a frame
)

// Error codes.
const (
	codeInvalidArgument  = "invalid_argument"
	codeNotFound         = "not_found"
	codeAlreadyExists    = "already_exists"
	codePermissionDenied = "permission_denied"
	codeNotADirectory    = "not_a_directory"
	codeIsADirectory     = "is_a_directory"
	codeNotEmpty         = "not_empty"
	codeNoSuchProcess    = "no_such_process"
	codeExecFailed       = "exec_failed"
	codeTooLarge         = "too_large"
	codeIOError          = "io_error"
	codeUnknownOp        = "unknown_op"
	codeNoSpace          = "no_space"      // ENOSPC, EDQUOT
	codeNameTooLong      = "name_too_long" // ENAMETOOLONG
	codeBusy             = "busy"          // EBUSY, ETXTBSY: a mount point or a running binary
	codeCrossDevice      = "cross_device"  // EXDEV: a rename across file systems
	codeSymlinkLoop      = "symlink_loop"  // ELOOP
	codeNotRegular       = "not_regular"   // a read of a FIFO, device or socket
	codeStdinClosed      = "stdin_closed"  // stdin written after it was closed, or after the reader left
)

// apiError is an error reported to the daemon with a protocol error code.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// request is the union of the fields of every op: decoding each line once
// into one struct keeps dispatch simple. Pointers mark fields whose absence
// differs from their zero value.
type request struct {
	ID *int64 `json:"id"`
	Op string `json:"op"`

	// Processes.
	Cmd       []string          `json:"cmd"`
	Env       map[string]string `json:"env"`
	Cwd       string            `json:"cwd"`
	User      flexString        `json:"user"`
	Stdin     bool              `json:"stdin"`
	Tag       string            `json:"tag"`
	Subscribe bool              `json:"subscribe"`
	Window    *int64            `json:"window"`
	Replay    bool              `json:"replay"`
	Pid       int               `json:"pid"`
	Bytes     int64             `json:"bytes"`
	Data      []byte            `json:"data"` // base64 on the wire
	EOF       bool              `json:"eof"`
	Signal    flexString        `json:"signal"`
	Pty       *ptySize          `json:"pty"`
	Cols      int               `json:"cols"`
	Rows      int               `json:"rows"`
	Wid       int               `json:"wid"`
	All       bool              `json:"all"`

	// Files.
	Path      string  `json:"path"`
	From      string  `json:"from"`
	To        string  `json:"to"`
	Depth     *int    `json:"depth"`
	Parents   *bool   `json:"parents"`
	Mode      *uint32 `json:"mode"`
	Recursive bool    `json:"recursive"`
	Offset    int64   `json:"offset"`
	Length    *int64  `json:"length"`
	Handle    string  `json:"handle"`

	// CRC-32 (IEEE) of a frame's payload, when the sender gives one.
	CRC *uint32 `json:"crc"`

	// framed: the request came as a binary frame (Data is its payload), and
	// its reply goes back as one.
	framed bool
}

// dataLimit is the most data bytes the request may carry or ask for.
func (r *request) dataLimit() int64 {
	if r.framed {
		return maxFrameData
	}
	return maxData
}

// flexString accepts a JSON string or number, for fields such as "user"
// (name or uid) and "signal" (name or number).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("expected a string or a number, got %.40s", b)
	}
	*f = flexString(n)
	return nil
}

type reply struct {
	ID     int64     `json:"id"`
	OK     bool      `json:"ok"`
	Result any       `json:"result,omitempty"`
	Error  *apiError `json:"error,omitempty"`
}

type helloEvent struct {
	Ev       string `json:"ev"`
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
}

type outEvent struct {
	Ev   string `json:"ev"`
	Pid  int    `json:"pid"`
	Fd   int    `json:"fd"`
	Data []byte `json:"data"`
}

type exitEvent struct {
	Ev     string  `json:"ev"`
	Pid    int     `json:"pid"`
	Code   int     `json:"code"`
	Signal *string `json:"signal"`
}

// empty is the result of ops that return nothing: {}.
type empty struct{}
