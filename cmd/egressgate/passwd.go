package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"golang.org/x/crypto/bcrypt"

	"github.com/egressgate/egressgate/rules"
)

// maxPasswordLine bounds what is read from stdin: bcrypt uses 72 bytes.
const maxPasswordLine = 4096

// runPasswd is "egressgate passwd".
func runPasswd(cl *commandLine, args []string, stdout, stderr io.Writer) int {
	return runPasswdFrom(cl, os.Stdin, args, stdout, stderr)
}

func runPasswdFrom(cl *commandLine, stdin io.Reader, args []string, stdout, stderr io.Writer) int {
	estate := cl.String("estate", "", "estate `NAME` to append to the line (the user's estate in the config)")
	cost := cl.Int("cost", bcrypt.DefaultCost, "bcrypt `cost` (4-31; each step doubles the time a check takes)")
	pos, exit, ok := cl.parse(args, stdout, stderr)
	if !ok {
		return exit
	}
	if len(pos) != 1 {
		return cl.fail(stderr, "want one USER")
	}
	user := pos[0]
	if err := checkUserName(user); err != nil {
		return cl.fail(stderr, "%v", err)
	}
	if *estate != "" && strings.ContainsFunc(*estate, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return cl.fail(stderr, "--estate %q: no ':', spaces or control characters", *estate)
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		return cl.fail(stderr, "--cost %d: want %d to %d", *cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	line, err := bufio.NewReaderSize(io.LimitReader(stdin, maxPasswordLine), maxPasswordLine).ReadBytes('\n')
	if err != nil && err != io.EOF {
		return cl.fail(stderr, "reading the password from stdin: %v", err)
	}
	password := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	hash, err := rules.HashPassword(password, *cost)
	if err != nil {
		return cl.fail(stderr, "%v (write it on stdin)", err)
	}
	out := user + ":" + string(hash)
	if *estate != "" {
		out += ":" + *estate
	}
	fmt.Fprintln(stdout, out)
	return 0
}

// checkUserName refuses a name that Basic or the password file cannot
// carry.
func checkUserName(user string) error {
	switch {
	case user == "":
		return fmt.Errorf("empty user name")
	case strings.ContainsFunc(user, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || !unicode.IsPrint(r) }) || user[0] == '#':
		return fmt.Errorf("user %q: no ':', spaces, control characters or leading '#'", user)
	}
	return nil
}
