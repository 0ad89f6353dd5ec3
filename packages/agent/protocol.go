package main

import (
	"encoding/json"
	"fmt"
)

// Wire types of docs/agent-protocol.md (protocol version 1).

const protocolVersion = 1

const (
	maxLineSize = 4 << 20 // longest accepted request line, excluding '\n'
	maxData     = 1 << 20 // most decoded bytes carried by one message
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
