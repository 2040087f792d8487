package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRunRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "missing users file",
			args: []string{"-listen", "127.0.0.1:0", "-users", filepath.Join(t.TempDir(), "none.json")},
			want: "loading users file"},
		{name: "extra argument",
			args: []string{"-users", "users.json", "extra"},
			want: `unexpected argument "extra"`},
		{name: "unknown flag",
			args: []string{"-port", "9080"},
			want: "flag provided but not defined"},
		{name: "bad listen address",
			args: []string{"-listen", "127.0.0.1:notaport", "-users", "users.json"},
			want: "notaport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
