package proxy

import (
	"net"
	"sync"
	"time"

	"github.com/egressgate/egressgate/proxy/internal/clienthello"
)

// The ClientHello is parsed by proxy/internal/clienthello; this file
// reads it off a connection.

// helloBufLen is how much readHello reads at most: maxHelloBytes of
// handshake plus room for the headers of a hello cut into many records.
const helloBufLen = clienthello.MaxBytes + clienthello.MaxRecords*5

// helloBufStart is readHello's first buffer: real ClientHellos are 0.2 to
// 2 KiB, and allocating (and zeroing) the most a hello may take for every
// tunnel was the largest share of the bytes a tunnel allocated.
const helloBufStart = 2048

// alertAccessDenied is a fatal TLS alert, access_denied (RFC 8446
// section 6), sent before closing a tunnel denied after the client's
// ClientHello, so that the client says "access denied" rather than
// "connection reset".
var alertAccessDenied = []byte{21, 3, 3, 0, 2, 2, 49}

// readHello reads from c, after the bytes early already read, until the
// bytes hold a whole ClientHello, the bytes are not one, or timeout
// passes. It returns every byte read (to be forwarded unchanged) and the
// server name, nil when there is none or the bytes are not a ClientHello.
// It leaves c without a read deadline.
func readHello(c net.Conn, early []byte, timeout time.Duration) (read, serverName []byte, err error) {
	var buf []byte
	if len(early) <= helloBufStart {
		buf = (*helloBufs.Get().(*[]byte))[:0]
	} else {
		buf = make([]byte, 0, len(early))
	}
	buf = append(buf, early...)
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	var p clienthello.Parser // resumes where the last read's bytes ended
	for {
		name, err := p.Parse(buf)
		if err != clienthello.ErrIncomplete {
			return buf, name, err
		}
		if len(buf) == cap(buf) {
			if cap(buf) >= helloBufLen {
				return buf, nil, clienthello.ErrTooLarge
			}
			buf = append(make([]byte, 0, min(2*cap(buf), helloBufLen)), buf...)
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr != nil && n == 0 {
			return buf, nil, rerr
		}
	}
}

// helloBufs holds readHello's first buffers: each tunnel reads one
// ClientHello and, once relay has written it upstream, needs it no more.
// Without the pool each held tunnel leaves 2 KiB of garbage behind, which
// the heap carries until the next collection.
var helloBufs = sync.Pool{New: func() any { b := make([]byte, 0, helloBufStart); return &b }}

// releaseHello gives a buffer readHello returned back to helloBufs. The
// caller must not use b afterwards; buffers that grew are left to the GC.
func releaseHello(b []byte) {
	if cap(b) == helloBufStart {
		b = b[:0]
		helloBufs.Put(&b)
	}
}

// isTLS reports whether b starts like a TLS handshake record, so that an
// alert will make sense to the peer.
func isTLS(b []byte) bool {
	return len(b) >= 2 && b[0] == clienthello.RecordTypeHandshake && b[1] == 3
}
