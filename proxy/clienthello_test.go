package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

// helloFor returns crypto/tls's first flight for sni with TLS versions up
// to maxVersion (0: the default, TLS 1.3).
func helloFor(t testing.TB, sni string, maxVersion uint16) []byte {
	t.Helper()
	c := &captureConn{}
	tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true, MaxVersion: maxVersion}).Handshake()
	return c.buf
}

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

// handshakeOf returns the handshake message carried by well-formed
// handshake records (the inverse of record).
func handshakeOf(b []byte) []byte {
	var msg []byte
	for len(b) >= 5 {
		n := int(b[3])<<8 | int(b[4])
		if len(b) < 5+n {
			break
		}
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
		if len(msg) >= 4 && len(msg) >= 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3])) {
			break
		}
	}
	return msg
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

// helloCases are the table and the fuzz seeds.
func helloCases(t testing.TB) []struct {
	name string
	in   []byte
	sni  string
	err  error
} {
	tls13 := helloFor(t, "api.example.com", 0)
	tls12 := helloFor(t, "crl.example.org", tls.VersionTLS12)
	long := helloFor(t, "a-rather-long-label-to-check-lengths.sub.example.com", 0)
	return []struct {
		name string
		in   []byte
		sni  string
		err  error
	}{
		{"tls13", tls13, "api.example.com", nil},
		{"tls12", tls12, "crl.example.org", nil},
		{"long-name", long, "a-rather-long-label-to-check-lengths.sub.example.com", nil},
		{"no-sni", helloFor(t, "", 0), "", nil},
		{"split-in-7-byte-records", record(22, handshakeOf(tls13), 7), "api.example.com", nil},
		{"split-in-1-byte-records", record(22, handshakeOf(tls12), 1), "crl.example.org", nil},
		{"synthetic", record(22, helloBody(sniExt("x.example.net")), 1<<14), "x.example.net", nil},
		{"no-extensions", record(22, helloBody(nil), 1<<14), "", nil},
		{"trailing-record-ignored", append(append([]byte{}, tls13...), 23, 3, 3, 0, 1, 0), "api.example.com", nil},
		{"empty", nil, "", errHelloIncomplete},
		{"half-header", tls13[:3], "", errHelloIncomplete},
		{"half-hello", tls13[:len(tls13)/2], "", errHelloIncomplete},
		{"all-but-one", tls13[:len(tls13)-1], "", errHelloIncomplete},
		{"http", []byte("GET / HTTP/1.1\r\n"), "", errNotTLS},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n"), "", errNotTLS},
		{"sslv2-version", []byte{22, 2, 0, 0, 1, 1}, "", errNotTLS},
		{"server-hello", record(22, []byte{2, 0, 0, 1, 0}, 100), "", errNotClientHello},
		{"server-hello-early", []byte{22, 3, 3, 0, 100, 2}, "", errNotClientHello},
		{"zero-length-record", []byte{22, 3, 1, 0, 0}, "", errHelloMalformed},
		{"oversized-record", []byte{22, 3, 1, 0x40, 1}, "", errHelloMalformed},
		{"too-large", []byte{22, 3, 1, 0, 4, 1, 0, 0x50, 0}, "", errHelloTooLarge},
		{"alert-between-fragments", append(record(22, handshakeOf(tls13)[:10], 10), 21, 3, 3, 0, 2, 2, 40), "", errHelloMalformed},
		{"two-sni-extensions", record(22, helloBody(append(sniExt("a.example"), sniExt("b.example")...)), 1<<14), "", errHelloMalformed},
		{"two-host-names", record(22, helloBody(sniExt("a.example", "b.example")), 1<<14), "", errHelloMalformed},
		{"empty-host-name", record(22, helloBody(sniExt("")), 1<<14), "", errHelloMalformed},
		{"truncated-extension", record(22, helloBody([]byte{0, 0, 0, 9, 0}), 1<<14), "", errHelloMalformed},
		{"extra-after-hello", record(22, append(helloBody(sniExt("a.example")), 0), 1<<14), "", errHelloMalformed},
	}
}

func TestParseClientHello(t *testing.T) {
	for _, tc := range helloCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			name, err := parseClientHello(tc.in)
			if !errors.Is(err, tc.err) || string(name) != tc.sni {
				t.Errorf("parseClientHello(%s) = %q, %v; want %q, %v", tc.name, name, err, tc.sni, tc.err)
			}
		})
	}
}

// TestParseClientHelloAllocs pins the single-record hello at zero
// allocations; a hello split over records copies it once.
func TestParseClientHelloAllocs(t *testing.T) {
	one := helloFor(t, "api.example.com", 0)
	split := record(22, handshakeOf(one), 100)
	for _, tc := range []struct {
		name string
		in   []byte
		max  float64
	}{{"one-record", one, 0}, {"split", split, 1}} {
		if n := testing.AllocsPerRun(100, func() { parseClientHello(tc.in) }); n > tc.max {
			t.Errorf("parseClientHello(%s) allocates %v times, want at most %v", tc.name, n, tc.max)
		}
	}
}

func FuzzParseClientHello(f *testing.F) {
	for _, tc := range helloCases(f) {
		f.Add(tc.in, uint8(5))
	}
	f.Fuzz(func(t *testing.T, in []byte, size uint8) {
		name, err := parseClientHello(in)
		if err != nil {
			if name != nil {
				t.Fatalf("name %q with error %v", name, err)
			}
			return
		}
		if name != nil && len(name) == 0 {
			t.Fatal("empty name without error")
		}
		// The same hello cut into other record sizes says the same.
		msg := handshakeOf(in)
		again, err := parseClientHello(record(22, msg, int(size)+1))
		if err != nil || !bytes.Equal(again, name) {
			t.Fatalf("re-recorded in %d-byte records: %q, %v; want %q", int(size)+1, again, err, name)
		}
		// A strict prefix of the records never gives an answer.
		if n := len(record(22, msg, 1<<14)); n > 1 {
			if got, err := parseClientHello(record(22, msg, 1<<14)[:n-1]); err != errHelloIncomplete {
				t.Fatalf("prefix: %q, %v; want errHelloIncomplete", got, err)
			}
		}
	})
}

func BenchmarkParseClientHello(b *testing.B) {
	hello := helloFor(b, "api.example.com", 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(hello)))
	for b.Loop() {
		if _, err := parseClientHello(hello); err != nil {
			b.Fatal(err)
		}
	}
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
		{"too-large", 17000, "", errHelloTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exts := append(sniExt("x"), padding(tt.pad)...)
			if tt.sni != "" {
				exts = append(sniExt(tt.sni), padding(tt.pad)...)
			}
			wire := record(recordTypeHandshake, helloBody(exts), 1000)
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
