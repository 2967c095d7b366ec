// Package clienthello reads the server name out of the first bytes a TLS
// client sends (its ClientHello, RFC 8446 section 4.1.2), without
// terminating TLS: the proxy's SNI check judges that name and forwards
// the bytes unchanged.
//
// The parse is linear in the bytes it is given, however the hello is cut
// into records or reads, and a hello may use at most MaxRecords records,
// so a client cannot make the proxy spend more than a bounded, small
// amount of work per connection. It is as strict as TLS servers are about
// the server_name extension: exactly one entry, a host_name.
//
// An encrypted ClientHello (ECH) hides the inner server name: the parse
// sees only the outer (public) name, which is all a proxy can judge.
package clienthello

import "errors"

// Bounds of a ClientHello.
const (
	// MaxBytes bounds the handshake message. Real hellos are 200 bytes
	// to 2 KiB (post-quantum key shares included); 16 KiB leaves room for
	// large extension sets and still bounds memory per connection.
	MaxBytes = 16 << 10
	// MaxRecords bounds the records a hello may be cut into. RFC 8446
	// section 5.1 allows fragmenting a handshake message, and real
	// clients send a hello in one record (two when it passes 16 KiB); 32
	// leaves room for odd middleboxes while a hello cut into 1-byte
	// records is refused at its 33rd byte.
	MaxRecords = 32
)

// TLS wire constants (RFC 8446 sections 4, 4.2, 5.1; RFC 6066 section 3).
const (
	// RecordTypeHandshake is the content type of a handshake record.
	RecordTypeHandshake  = 22
	recordHeaderLen      = 5
	maxRecordLen         = 1 << 14
	handshakeClientHello = 1
	extServerName        = 0
	sniHostName          = 0
)

// Errors of Parse. ErrIncomplete asks for more bytes; every other error
// is final.
var (
	ErrIncomplete     = errors.New("clienthello: incomplete")
	ErrNotTLS         = errors.New("clienthello: not a TLS handshake record")
	ErrNotClientHello = errors.New("clienthello: first handshake message is not a ClientHello")
	ErrMalformed      = errors.New("clienthello: malformed")
	ErrTooLarge       = errors.New("clienthello: larger than 16 KiB")
	ErrTooManyRecords = errors.New("clienthello: cut into more than 32 records")
)

// Parser parses a ClientHello as its bytes arrive. Each call to Parse is
// given every byte read so far: the bytes of the last call unchanged,
// maybe more after them. It reads only the records it has not seen, and
// copies each byte of a hello cut into records once. The zero value is
// ready.
type Parser struct {
	off     int    // bytes of whole records already taken
	records int    // whole records taken
	msg     []byte // the handshake message gathered from them (owned)
}

// Parse parses buf, a hello's bytes all at once.
func Parse(buf []byte) (serverName []byte, err error) {
	var p Parser
	return p.Parse(buf)
}

// Parse returns the host_name of the hello's server_name extension, nil
// when the hello has none, or ErrIncomplete while buf holds a consistent
// prefix of a hello. The name aliases buf or the Parser's own copy.
func (p *Parser) Parse(buf []byte) (serverName []byte, err error) {
	for {
		rest := buf[p.off:]
		if len(rest) >= 1 && rest[0] != RecordTypeHandshake {
			if p.off == 0 {
				return nil, ErrNotTLS
			}
			return nil, ErrMalformed // another record type inside the hello
		}
		if len(rest) >= 2 && rest[1] != 3 {
			return nil, ErrNotTLS // legacy_record_version major is 3 in every TLS
		}
		if len(rest) < recordHeaderLen {
			return nil, ErrIncomplete
		}
		n := int(rest[3])<<8 | int(rest[4])
		if n == 0 || n > maxRecordLen {
			return nil, ErrMalformed
		}
		if len(rest) < recordHeaderLen+n {
			if p.msg == nil && len(rest) > recordHeaderLen {
				// Judge the message header early, so a non-hello does
				// not wait for its whole record.
				if err := checkHeader(rest[recordHeaderLen:]); err != nil {
					return nil, err
				}
			}
			return nil, ErrIncomplete
		}
		if p.records == MaxRecords {
			return nil, ErrTooManyRecords
		}
		frag := rest[recordHeaderLen : recordHeaderLen+n]
		p.off += recordHeaderLen + n
		p.records++
		msg := frag
		if p.msg != nil || !complete(frag) {
			// A hello in more than one record is gathered in a copy,
			// sized to the whole message once its header is known.
			if p.msg == nil {
				p.msg = make([]byte, 0, gatherCap(frag))
			} else if len(p.msg) < 4 && len(p.msg)+len(frag) >= 4 {
				hdr := append(append(make([]byte, 0, 4), p.msg...), frag[:4-len(p.msg)]...)
				grown := make([]byte, len(p.msg), gatherCap(hdr))
				copy(grown, p.msg)
				p.msg = grown
			}
			p.msg = append(p.msg, frag...)
			msg = p.msg
		}
		if err := checkHeader(msg); err != nil {
			return nil, err
		}
		if len(msg) < 4 {
			continue
		}
		mlen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if len(msg) >= 4+mlen {
			if len(msg) > 4+mlen {
				// A second handshake message after the ClientHello: no
				// client sends one before the server's answer.
				return nil, ErrMalformed
			}
			return serverNameOf(msg[4:])
		}
	}
}

// complete reports whether msg holds a whole handshake message (or more).
func complete(msg []byte) bool {
	return len(msg) >= 4 && len(msg) >= 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3]))
}

// gatherCap is the capacity to gather a hello into: the whole message
// when its header is there (and within bounds), else a little room.
func gatherCap(msg []byte) int {
	if len(msg) >= 4 {
		if n := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])); n <= MaxBytes {
			return max(n, len(msg))
		}
	}
	return len(msg) + 64
}

// checkHeader checks what is there of a handshake message header.
func checkHeader(msg []byte) error {
	if len(msg) >= 1 && msg[0] != handshakeClientHello {
		return ErrNotClientHello
	}
	if len(msg) >= 4 {
		mlen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if mlen+4 > MaxBytes {
			return ErrTooLarge
		}
	}
	return nil
}

// serverNameOf walks a ClientHello body (RFC 8446 section 4.1.2) to the
// server_name extension.
func serverNameOf(b []byte) ([]byte, error) {
	var r wireReader = b
	if !r.skip(2+32) || // legacy_version, random
		!r.skipVec8(32) || // legacy_session_id
		!r.skipVec16(2) || // cipher_suites
		!r.skipVec8(255) { // legacy_compression_methods
		return nil, ErrMalformed
	}
	if len(r) == 0 {
		return nil, nil // no extensions (TLS 1.2 and older may omit them)
	}
	exts, ok := r.vec16()
	if !ok || len(r) != 0 {
		return nil, ErrMalformed
	}
	var name []byte
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return nil, ErrMalformed
		}
		if typ != extServerName {
			continue
		}
		if name != nil {
			return nil, ErrMalformed // RFC 8446 section 4.2: at most one of each
		}
		if name, ok = hostName(data); !ok {
			return nil, ErrMalformed
		}
	}
	return name, nil
}

// hostName reads a server_name extension's data (RFC 6066 section 3): a
// list that must hold exactly one entry, a non-empty host_name. TLS
// servers read no other shape (OpenSSL refuses any; Go takes only the
// host_name), so a proxy that read the list more loosely could judge a
// name the server never sees.
func hostName(data wireReader) ([]byte, bool) {
	list, ok := data.vec16()
	if !ok || len(data) != 0 {
		return nil, false
	}
	nameType, ok1 := list.u8()
	n, ok2 := list.vec16()
	if !ok1 || !ok2 || nameType != sniHostName || len(n) == 0 || len(list) != 0 {
		return nil, false
	}
	return n, true
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
