// Package hellotest builds TLS ClientHello bytes by hand for tests: hellos
// crypto/tls would never send (split into tiny records, odd server_name
// lists), so the parser and the proxy's hello read can be driven with them.
package hellotest

// Records wraps payload in TLS records of type typ, at most size bytes
// each.
func Records(typ byte, payload []byte, size int) []byte {
	var out []byte
	for len(payload) > 0 {
		n := min(size, len(payload))
		out = append(out, typ, 3, 1, byte(n>>8), byte(n))
		out = append(out, payload[:n]...)
		payload = payload[n:]
	}
	return out
}

// Hello builds a ClientHello handshake message with the given extensions
// block (nil: no extensions field at all).
func Hello(exts []byte) []byte {
	body := make([]byte, 34)              // version, random
	body = append(body, 0)                // session id
	body = append(body, 0, 2, 0x13, 0x01) // one cipher suite
	body = append(body, 1, 0)             // null compression
	if exts != nil {
		body = append(body, byte(len(exts)>>8), byte(len(exts)))
		body = append(body, exts...)
	}
	return append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// SNI builds a server_name extension with a host_name entry for each of
// names.
func SNI(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, 0, byte(len(n)>>8), byte(len(n)))
		list = append(list, n...)
	}
	data := append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)
	return append([]byte{0, 0, byte(len(data) >> 8), byte(len(data))}, data...)
}
