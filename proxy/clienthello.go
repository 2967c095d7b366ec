package proxy

import (
	"errors"
	"net"
	"slices"
	"sync"
	"time"
)

// maxHelloBytes bounds what is read while waiting for a ClientHello: the
// records holding it, headers included. Real hellos are 200 bytes to 2 KiB
// (post-quantum key shares included); 16 KiB leaves room for large
// extension sets and still bounds memory per connection.
const maxHelloBytes = 16 << 10

// TLS wire constants (RFC 8446 sections 4, 4.2, 5.1; RFC 6066 section 3).
const (
	recordHeaderLen      = 5
	recordTypeHandshake  = 22
	maxRecordLen         = 1 << 14
	handshakeClientHello = 1
	extServerName        = 0
	sniHostName          = 0
)

// Errors of parseClientHello. errHelloIncomplete asks for more bytes;
// every other error is final.
var (
	errHelloIncomplete = errors.New("clienthello: incomplete")
	errNotTLS          = errors.New("clienthello: not a TLS handshake record")
	errNotClientHello  = errors.New("clienthello: first handshake message is not a ClientHello")
	errHelloMalformed  = errors.New("clienthello: malformed")
	errHelloTooLarge   = errors.New("clienthello: larger than 16 KiB")
)

// parseClientHello parses buf, the first bytes a TLS client sent, and
// returns the host_name of the server_name extension, nil when the hello
// has none. A ClientHello may span several handshake records (RFC 8446
// section 5.1 allows fragmenting it); it returns errHelloIncomplete while
// buf holds a consistent prefix of one. The returned name aliases buf when
// the hello fits in one record (then nothing is allocated).
func parseClientHello(buf []byte) (serverName []byte, err error) {
	var msg []byte // the handshake message gathered so far
	copied := false
	for off := 0; ; {
		rest := buf[off:]
		if len(rest) >= 1 && rest[0] != recordTypeHandshake {
			if off == 0 {
				return nil, errNotTLS
			}
			return nil, errHelloMalformed // another record type inside the hello
		}
		if len(rest) >= 2 && rest[1] != 3 {
			return nil, errNotTLS // legacy_record_version major is 3 in every TLS
		}
		if len(rest) < recordHeaderLen {
			return nil, errHelloIncomplete
		}
		n := int(rest[3])<<8 | int(rest[4])
		if n == 0 || n > maxRecordLen {
			return nil, errHelloMalformed
		}
		if len(rest) < recordHeaderLen+n {
			if len(msg) == 0 && len(rest) > recordHeaderLen {
				// Judge the message header early, so a non-hello does
				// not wait for its whole record.
				if err := checkHelloHeader(rest[recordHeaderLen:]); err != nil {
					return nil, err
				}
			}
			return nil, errHelloIncomplete
		}
		frag := rest[recordHeaderLen : recordHeaderLen+n]
		off += recordHeaderLen + n
		switch {
		case msg == nil:
			msg = frag
		case !copied:
			msg = append(make([]byte, 0, helloCap(msg, len(frag))), msg...)
			copied = true
			fallthrough
		default:
			if len(msg) < 4 && len(msg)+len(frag) >= 4 {
				msg = slices.Grow(msg, helloCap(append(msg, frag[:4-len(msg)]...), len(frag)))
			}
			msg = append(msg, frag...)
		}
		if err := checkHelloHeader(msg); err != nil {
			return nil, err
		}
		if len(msg) < 4 {
			continue
		}
		mlen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if len(msg) >= 4+mlen {
			if len(msg) > 4+mlen {
				// A second handshake message after the ClientHello:
				// no client sends one before the server's answer.
				return nil, errHelloMalformed
			}
			return helloServerName(msg[4:])
		}
	}
}

// helloCap is the capacity to gather a fragmented hello into: the whole
// message once its header is known, so that it is copied only once.
func helloCap(msg []byte, next int) int {
	if len(msg) >= 4 {
		if n := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])); n <= maxHelloBytes {
			return max(n, len(msg)+next)
		}
	}
	return len(msg) + next + 64
}

// checkHelloHeader checks what is there of a handshake message header.
func checkHelloHeader(msg []byte) error {
	if len(msg) >= 1 && msg[0] != handshakeClientHello {
		return errNotClientHello
	}
	if len(msg) >= 4 {
		mlen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if mlen+4 > maxHelloBytes {
			return errHelloTooLarge
		}
	}
	return nil
}

// helloServerName walks a ClientHello body (RFC 8446 section 4.1.2) to
// the server_name extension.
func helloServerName(b []byte) ([]byte, error) {
	var r wireReader = b
	if !r.skip(2+32) || // legacy_version, random
		!r.skipVec8(32) || // legacy_session_id
		!r.skipVec16(2) || // cipher_suites
		!r.skipVec8(255) { // legacy_compression_methods
		return nil, errHelloMalformed
	}
	if len(r) == 0 {
		return nil, nil // no extensions (TLS 1.2 and older may omit them)
	}
	exts, ok := r.vec16()
	if !ok || len(r) != 0 {
		return nil, errHelloMalformed
	}
	var name []byte
	seen := false
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return nil, errHelloMalformed
		}
		if typ != extServerName {
			continue
		}
		if seen {
			return nil, errHelloMalformed // RFC 8446 section 4.2: at most one of each
		}
		seen = true
		list, ok := data.vec16()
		if !ok || len(data) != 0 || len(list) == 0 {
			return nil, errHelloMalformed
		}
		for len(list) > 0 {
			nameType, ok1 := list.u8()
			n, ok2 := list.vec16()
			if !ok1 || !ok2 {
				return nil, errHelloMalformed
			}
			if nameType == sniHostName {
				if name != nil || len(n) == 0 {
					return nil, errHelloMalformed // RFC 6066: one host_name, not empty
				}
				name = n
			}
		}
	}
	return name, nil
}

// wireReader reads big-endian TLS vectors off the front of a byte slice.
type wireReader []byte

func (r *wireReader) u8() (byte, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return v, true
}

func (r *wireReader) u16() (uint16, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := uint16((*r)[0])<<8 | uint16((*r)[1])
	*r = (*r)[2:]
	return v, true
}

func (r *wireReader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

// vec16 returns the vector with a two-byte length in front.
func (r *wireReader) vec16() (wireReader, bool) {
	n, ok := r.u16()
	if !ok || len(*r) < int(n) {
		return nil, false
	}
	v := (*r)[:n]
	*r = (*r)[n:]
	return v, true
}

// skipVec8 skips a vector with a one-byte length of at most max.
func (r *wireReader) skipVec8(max int) bool {
	n, ok := r.u8()
	return ok && int(n) <= max && r.skip(int(n))
}

// skipVec16 skips a non-empty vector with a two-byte length that is a
// multiple of unit.
func (r *wireReader) skipVec16(unit int) bool {
	v, ok := r.vec16()
	return ok && len(v) > 0 && len(v)%unit == 0
}

// helloBufLen is how much readHello reads at most: maxHelloBytes of
// handshake plus room for the headers of a hello cut into many records.
const helloBufLen = maxHelloBytes + 1024

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
	for {
		name, err := parseClientHello(buf)
		if err != errHelloIncomplete {
			return buf, name, err
		}
		if len(buf) == cap(buf) {
			if cap(buf) >= helloBufLen {
				return buf, nil, errHelloTooLarge
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
	return len(b) >= 2 && b[0] == recordTypeHandshake && b[1] == 3
}
