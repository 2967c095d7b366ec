package proxy

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestDefaultMaxConnsFor covers the cap from a descriptor limit and the
// plain cap of a platform without one (Windows), on every platform.
func TestDefaultMaxConnsFor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit uint64
		known bool
		want  int
	}{
		{"20000", 20000, true, 9247},
		{"65536", 65536, true, 30592},
		{"tiny", 100, true, minDefaultConn},
		{"unlimited", 1 << 62, true, 1 << 19},
		{"no limit on the platform", 0, false, fixedMaxConns},
	} {
		if got := defaultMaxConnsFor(tc.limit, tc.known); got != tc.want {
			t.Errorf("%s: defaultMaxConnsFor(%d, %v) = %d, want %d", tc.name, tc.limit, tc.known, got, tc.want)
		}
	}
}

// scriptedListener returns the errors in errs from Accept, one per call,
// then conn, then net.ErrClosed.
type scriptedListener struct {
	errs  []error
	conn  net.Conn
	calls int
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	l.calls++
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	if c := l.conn; c != nil {
		l.conn = nil
		return c, nil
	}
	return nil, net.ErrClosed
}

func (l *scriptedListener) Close() error   { return nil }
func (l *scriptedListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestWaitListener drives the accept guard of the platforms without a
// spare descriptor (waitListener): running out of descriptors is counted
// and waited out, never returned, and any other error is returned as it
// is.
func TestWaitListener(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: &net.OpError{Err: syscall.EMFILE}}
	for _, tc := range []struct {
		name     string
		errs     []error
		conn     net.Conn
		wantConn bool
		wantErr  error
		wantNoFD int64
	}{
		{"client at once", nil, server, true, nil, 0},
		{"EMFILE then client", []error{emfile, syscall.ENFILE, emfile}, server, true, nil, 3},
		{"closed", nil, nil, false, net.ErrClosed, 0},
		{"EMFILE then closed", []error{emfile}, nil, false, net.ErrClosed, 1},
		{"other error", []error{syscall.ECONNABORTED}, server, false, syscall.ECONNABORTED, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{}
			ln := &scriptedListener{errs: tc.errs, conn: tc.conn}
			c, err := (&waitListener{Listener: ln, s: s}).Accept()
			if (c != nil) != tc.wantConn || !errors.Is(err, tc.wantErr) && err != tc.wantErr {
				t.Errorf("Accept() = %v, %v; want a connection %v, error %v", c, err, tc.wantConn, tc.wantErr)
			}
			if got := s.Limits().OutOfDescriptors; got != tc.wantNoFD {
				t.Errorf("OutOfDescriptors = %d, want %d", got, tc.wantNoFD)
			}
		})
	}
}
