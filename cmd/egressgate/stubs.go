package main

import (
	"fmt"
	"io"
)

// Commands not yet built; each moves to its own file when it is.

func runReport(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "egressgate report: not built yet")
	return 1
}
