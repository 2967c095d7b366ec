// Package proxytest provides loopback upstreams, certificates, log capture
// and output matching for egressgate's tests and its load tool, as
// net/http/httptest does for HTTP handlers. It imports no other egressgate
// package, so the tests of every layer may use it.
package proxytest

// TB is the part of testing.TB the helpers use; *testing.T and *testing.B
// satisfy it. The package declares it rather than import testing so that
// the load tool, a program, does not link the testing package.
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}
