package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestPasswd(t *testing.T) {
	for _, tc := range []struct {
		name, stdin string
		args        []string
		exit        int
		prefix      string // of stdout
		stderr      string
	}{
		{"line", "correct horse\n", []string{"--cost", "4", "alice"}, 0, "alice:$2a$04$", ""},
		{"estate crlf", "correct horse\r\n", []string{"--cost", "4", "--estate", "london", "alice"}, 0, "alice:$2a$04$", ""},
		{"no newline", "correct horse", []string{"--cost", "4", "alice"}, 0, "alice:$2a$04$", ""},
		{"empty", "\n", []string{"alice"}, 2, "", "empty password"},
		{"colon user", "x\n", []string{"a:b"}, 2, "", "no ':'"},
		{"no user", "x\n", nil, 2, "", "want one USER"},
		{"bad cost", "x\n", []string{"--cost", "40", "alice"}, 2, "", "--cost 40"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			exit := runPasswdFrom(newCommandLine("passwd"), strings.NewReader(tc.stdin), tc.args, &stdout, &stderr)
			if exit != tc.exit || !strings.HasPrefix(stdout.String(), tc.prefix) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("passwd %q = %d, stdout %q, stderr %q", tc.args, exit, stdout.String(), stderr.String())
			}
			if exit != 0 {
				return
			}
			if strings.Contains(stdout.String(), "correct horse") {
				t.Error("the password is in the output")
			}
			fields := strings.Split(strings.TrimSpace(stdout.String()), ":")
			if err := bcrypt.CompareHashAndPassword([]byte(fields[1]), []byte("correct horse")); err != nil {
				t.Errorf("hash does not match the password: %v", err)
			}
			if strings.Contains(tc.name, "estate") && fields[2] != "london" {
				t.Errorf("line %q does not end in :london", stdout.String())
			}
		})
	}
}
