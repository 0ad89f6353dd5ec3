package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestLookupUser(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("passwd", "# comment\nroot:x:0:0:root:/root:/bin/bash\n"+
		"alice:x:1000:1000:Alice:/home/alice:/bin/sh\nbroken:x:notanumber:1::/:/bin/sh\n")
	write("group", "root:x:0:\nalice:x:1000:\nwheel:x:10:bob,alice\ndocker:x:999:alice\nother:x:50:bob\n")

	tests := []struct {
		spec string
		want account
	}{
		{"alice", account{name: "alice", uid: 1000, gid: 1000, home: "/home/alice", groups: []uint32{1000, 10, 999}}},
		{"1000", account{name: "alice", uid: 1000, gid: 1000, home: "/home/alice", groups: []uint32{1000, 10, 999}}},
		{"root", account{name: "root", uid: 0, gid: 0, home: "/root", groups: []uint32{0}}},
		{"4242", account{uid: 4242, gid: 4242, home: "/", groups: []uint32{4242}}},
	}
	for _, tt := range tests {
		got, err := lookupUserIn(dir, tt.spec)
		if err != nil {
			t.Fatalf("%s: %v", tt.spec, err)
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.spec, *got, tt.want)
		}
	}
	for _, spec := range []string{"nobody", "broken", ""} {
		if _, err := lookupUserIn(dir, spec); err == nil {
			t.Errorf("%q: expected an error", spec)
		}
	}
	// Without /etc/passwd, root still works.
	if got, err := lookupUserIn(t.TempDir(), "root"); err != nil || got.uid != 0 || got.home != "/root" {
		t.Errorf("root without passwd: %+v, %v", got, err)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{"SIGTERM": 15, "kill": 9, "9": 9, "SIGUSR2": 12, "64": 64} {
		if got, err := parseSignal(in); err != nil || int(got) != want {
			t.Errorf("parseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "SIGNOPE"} {
		if _, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) succeeded", in)
		}
	}
}
