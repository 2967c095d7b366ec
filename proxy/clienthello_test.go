package proxy

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/internal/clienthello"
)

// record wraps payload in TLS records of at most size bytes each.
func record(typ byte, payload []byte, size int) []byte {
	var out []byte
	for len(payload) > 0 {
		n := min(size, len(payload))
		out = append(out, typ, 3, 1, byte(n>>8), byte(n))
		out = append(out, payload[:n]...)
		payload = payload[n:]
	}
	return out
}

// helloBody builds a ClientHello handshake message with the given
// extensions block (nil: no extensions field at all).
func helloBody(exts []byte) []byte {
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

// sniExt builds a server_name extension naming names.
func sniExt(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, 0, byte(len(n)>>8), byte(len(n)))
		list = append(list, n...)
	}
	data := append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)
	return append([]byte{0, 0, byte(len(data) >> 8), byte(len(data))}, data...)
}

// TestReadHelloGrows feeds readHello hellos larger than its first buffer,
// cut into small records, and one larger than it accepts at all.
func TestReadHelloGrows(t *testing.T) {
	padding := func(n int) []byte { // extension 21, padding (RFC 7685)
		return append([]byte{0, 21, byte(n >> 8), byte(n)}, make([]byte, n)...)
	}
	tests := []struct {
		name    string
		pad     int
		sni     string
		wantErr error
	}{
		{"small", 0, "a.example.org", nil},
		{"5KiB", 5000, "b.example.org", nil},
		{"15KiB", 15000, "c.example.org", nil},
		{"too-large", 17000, "", clienthello.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exts := append(sniExt("x"), padding(tt.pad)...)
			if tt.sni != "" {
				exts = append(sniExt(tt.sni), padding(tt.pad)...)
			}
			wire := record(clienthello.RecordTypeHandshake, helloBody(exts), 1000)
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			go client.Write(wire) // net.Pipe: unblocks when read or closed
			read, name, err := readHello(server, nil, 5*time.Second)
			if !errors.Is(err, tt.wantErr) || string(name) != tt.sni {
				t.Fatalf("readHello = %q, %v; want %q, %v", name, err, tt.sni, tt.wantErr)
			}
			if err == nil && !bytes.Equal(read, wire) {
				t.Errorf("readHello read %d bytes, not the %d-byte hello", len(read), len(wire))
			}
		})
	}
}
