package proxy

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/egressgate/egressgate/proxy/internal/clienthello"
	"github.com/egressgate/egressgate/proxy/internal/clienthello/hellotest"
)

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
			exts := append(hellotest.SNI("x"), padding(tt.pad)...)
			if tt.sni != "" {
				exts = append(hellotest.SNI(tt.sni), padding(tt.pad)...)
			}
			wire := hellotest.Records(clienthello.RecordTypeHandshake, hellotest.Hello(exts), 1000)
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
