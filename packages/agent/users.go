package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The agent parses the sandbox's /etc/passwd and /etc/group itself: os/user
// needs cgo for NSS, and the files are re-read on every lookup because the
// sandbox may change them (useradd) at any time.

const etcDir = "/etc"

type account struct {
	name   string // empty for a numeric uid without a passwd entry
	uid    uint32
	gid    uint32
	home   string
	groups []uint32 // supplementary groups, including the primary group
}

// lookupUser resolves a user name or numeric uid.
func lookupUser(spec string) (*account, error) { return lookupUserIn(etcDir, spec) }

// requestUser resolves a request's user, root when none is given, and returns the name it resolved;
// an unknown user is the client's error.
func requestUser(spec flexString) (string, *account, error) {
	s := string(spec)
	if s == "" {
		s = "root"
	}
	acct, err := lookupUser(s)
	if err != nil {
		return s, nil, errorf(codeInvalidArgument, "%v", err)
	}
	return s, acct, nil
}

func lookupUserIn(dir, spec string) (*account, error) {
	if spec == "" {
		return nil, fmt.Errorf("empty user")
	}
	uid, numErr := strconv.ParseUint(spec, 10, 32)
	numeric := numErr == nil

	var acct *account
	for _, f := range readColonFile(filepath.Join(dir, "passwd"), 6) {
		// name:password:uid:gid:gecos:home[:shell]
		entryUID, err1 := strconv.ParseUint(f[2], 10, 32)
		entryGID, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		if f[0] == spec || (numeric && entryUID == uid) {
			acct = &account{name: f[0], uid: uint32(entryUID), gid: uint32(entryGID), home: f[5]}
			break
		}
	}
	switch {
	case acct != nil:
	case numeric:
		// Like container runtimes, accept a uid that has no passwd entry.
		acct = &account{uid: uint32(uid), gid: uint32(uid), home: "/"}
	case spec == "root":
		// Minimal images may have no /etc/passwd at all.
		acct = &account{name: "root", home: "/root"}
	default:
		return nil, fmt.Errorf("unknown user %q", spec)
	}

	acct.groups = []uint32{acct.gid}
	if acct.name == "" {
		return acct, nil
	}
	for _, f := range readColonFile(filepath.Join(dir, "group"), 4) {
		// name:password:gid:member,member
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil || uint32(gid) == acct.gid {
			continue
		}
		for _, member := range strings.Split(f[3], ",") {
			if member == acct.name {
				acct.groups = append(acct.groups, uint32(gid))
				break
			}
		}
	}
	return acct, nil
}

// readColonFile returns the colon-separated fields of each line of path that
// has at least minFields fields, skipping blank lines and comments. A missing
// or unreadable file reads as empty.
func readColonFile(path string, minFields int) [][]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var entries [][]string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if f := strings.Split(line, ":"); len(f) >= minFields {
			entries = append(entries, f)
		}
	}
	return entries
}
