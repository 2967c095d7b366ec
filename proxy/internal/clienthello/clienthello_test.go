package clienthello

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"testing"

	"github.com/egressgate/egressgate/proxy/internal/clienthello/hellotest"
)

// helloFor returns crypto/tls's first flight for sni with TLS versions up
// to maxVersion (0: the default, TLS 1.3).
func helloFor(t testing.TB, sni string, maxVersion uint16) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		tls.Client(client, &tls.Config{ServerName: sni, InsecureSkipVerify: true, MaxVersion: maxVersion}).Handshake()
		client.Close()
	}()
	buf := make([]byte, 64<<10)
	n, err := server.Read(buf) // the first flight is one write
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
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

// sniExtTyped builds a server_name extension of (type, name) pairs.
func sniExtTyped(pairs ...any) []byte {
	var list []byte
	for i := 0; i < len(pairs); i += 2 {
		n := pairs[i+1].(string)
		list = append(list, byte(pairs[i].(int)), byte(len(n)>>8), byte(len(n)))
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
		{"split-in-7-byte-records", hellotest.Records(22, hellotest.Hello(hellotest.SNI("x.example.net")), 7), "x.example.net", nil},
		{"split-in-32-records", hellotest.Records(22, handshakeOf(tls13), (len(handshakeOf(tls13))+31)/32), "api.example.com", nil},
		{"split-in-33-records", hellotest.Records(22, handshakeOf(tls13), (len(handshakeOf(tls13))+32)/33), "", ErrTooManyRecords},
		{"split-in-1-byte-records", hellotest.Records(22, handshakeOf(tls12), 1), "", ErrTooManyRecords},
		{"synthetic", hellotest.Records(22, hellotest.Hello(hellotest.SNI("x.example.net")), 1<<14), "x.example.net", nil},
		{"no-extensions", hellotest.Records(22, hellotest.Hello(nil), 1<<14), "", nil},
		{"trailing-record-ignored", append(append([]byte{}, tls13...), 23, 3, 3, 0, 1, 0), "api.example.com", nil},
		{"empty", nil, "", ErrIncomplete},
		{"half-header", tls13[:3], "", ErrIncomplete},
		{"half-hello", tls13[:len(tls13)/2], "", ErrIncomplete},
		{"all-but-one", tls13[:len(tls13)-1], "", ErrIncomplete},
		{"http", []byte("GET / HTTP/1.1\r\n"), "", ErrNotTLS},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n"), "", ErrNotTLS},
		{"sslv2-version", []byte{22, 2, 0, 0, 1, 1}, "", ErrNotTLS},
		{"server-hello", hellotest.Records(22, []byte{2, 0, 0, 1, 0}, 100), "", ErrNotClientHello},
		{"server-hello-early", []byte{22, 3, 3, 0, 100, 2}, "", ErrNotClientHello},
		{"zero-length-record", []byte{22, 3, 1, 0, 0}, "", ErrMalformed},
		{"oversized-record", []byte{22, 3, 1, 0x40, 1}, "", ErrMalformed},
		{"too-large", []byte{22, 3, 1, 0, 4, 1, 0, 0x50, 0}, "", ErrTooLarge},
		{"alert-between-fragments", append(hellotest.Records(22, handshakeOf(tls13)[:10], 10), 21, 3, 3, 0, 2, 2, 40), "", ErrMalformed},
		{"two-sni-extensions", hellotest.Records(22, hellotest.Hello(append(hellotest.SNI("a.example"), hellotest.SNI("b.example")...)), 1<<14), "", ErrMalformed},
		{"two-host-names", hellotest.Records(22, hellotest.Hello(hellotest.SNI("a.example", "b.example")), 1<<14), "", ErrMalformed},
		{"host-name-then-other-type", hellotest.Records(22, hellotest.Hello(sniExtTyped(0, "a.example", 1, "b.example")), 1<<14), "", ErrMalformed},
		{"other-type-then-host-name", hellotest.Records(22, hellotest.Hello(sniExtTyped(1, "b.example", 0, "a.example")), 1<<14), "", ErrMalformed},
		{"other-type-only", hellotest.Records(22, hellotest.Hello(sniExtTyped(1, "b.example")), 1<<14), "", ErrMalformed},
		{"empty-list", hellotest.Records(22, hellotest.Hello([]byte{0, 0, 0, 2, 0, 0}), 1<<14), "", ErrMalformed},
		{"empty-host-name", hellotest.Records(22, hellotest.Hello(hellotest.SNI("")), 1<<14), "", ErrMalformed},
		{"truncated-extension", hellotest.Records(22, hellotest.Hello([]byte{0, 0, 0, 9, 0}), 1<<14), "", ErrMalformed},
		{"extra-after-hello", hellotest.Records(22, append(hellotest.Hello(hellotest.SNI("a.example")), 0), 1<<14), "", ErrMalformed},
	}
}

func TestParseClientHello(t *testing.T) {
	for _, tc := range helloCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			name, err := Parse(tc.in)
			if !errors.Is(err, tc.err) || string(name) != tc.sni {
				t.Errorf("Parse(%s) = %q, %v; want %q, %v", tc.name, name, err, tc.sni, tc.err)
			}
		})
	}
}

// TestParseClientHelloAllocs pins the single-record hello at zero
// allocations; a hello split over records copies it once.
func TestParseClientHelloAllocs(t *testing.T) {
	one := helloFor(t, "api.example.com", 0)
	split := hellotest.Records(22, handshakeOf(one), 100)
	for _, tc := range []struct {
		name string
		in   []byte
		max  float64
	}{{"one-record", one, 0}, {"split", split, 1}} {
		if n := testing.AllocsPerRun(100, func() { Parse(tc.in) }); n > tc.max {
			t.Errorf("Parse(%s) allocates %v times, want at most %v", tc.name, n, tc.max)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range helloCases(f) {
		f.Add(tc.in, uint8(5))
	}
	f.Fuzz(func(t *testing.T, in []byte, size uint8) {
		name, err := Parse(in)
		if err != nil {
			if name != nil {
				t.Fatalf("name %q with error %v", name, err)
			}
			return
		}
		if name != nil && len(name) == 0 {
			t.Fatal("empty name without error")
		}
		// The same hello cut into other record sizes says the same,
		// up to MaxRecords records.
		msg := handshakeOf(in)
		again, err := Parse(hellotest.Records(22, msg, int(size)+1))
		if (len(msg)+int(size))/(int(size)+1) > MaxRecords {
			if err != ErrTooManyRecords {
				t.Fatalf("re-recorded in %d-byte records: %q, %v; want ErrTooManyRecords", int(size)+1, again, err)
			}
		} else if err != nil || !bytes.Equal(again, name) {
			t.Fatalf("re-recorded in %d-byte records: %q, %v; want %q", int(size)+1, again, err, name)
		}
		// Fed a byte at a time, a Parser says the same as Parse.
		var p Parser
		var got []byte
		for i := 1; i <= len(in); i++ {
			if got, err = p.Parse(in[:i]); err != ErrIncomplete {
				break
			}
		}
		if err != nil || !bytes.Equal(got, name) {
			t.Fatalf("fed a byte at a time: %q, %v; want %q", got, err, name)
		}
		// A strict prefix of the records never gives an answer.
		if n := len(hellotest.Records(22, msg, 1<<14)); n > 1 {
			if got, err := Parse(hellotest.Records(22, msg, 1<<14)[:n-1]); err != ErrIncomplete {
				t.Fatalf("prefix: %q, %v; want ErrIncomplete", got, err)
			}
		}
	})
}

// TestParserCopiesOnce: a hello cut into records was gathered again, and
// copied again, after every read, so its cost grew with the square of its
// size (157 ms of CPU for a 2,872-byte hello in 1-byte records). Fed a
// byte at a time, a Parser now allocates its copy once.
func TestParserCopiesOnce(t *testing.T) {
	msg := handshakeOf(helloFor(t, "api.example.com", 0))
	wire := hellotest.Records(22, msg, (len(msg)+MaxRecords-1)/MaxRecords)
	n := testing.AllocsPerRun(20, func() {
		var p Parser
		for i := 1; i <= len(wire); i++ {
			if _, err := p.Parse(wire[:i]); err != ErrIncomplete {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatal("never complete")
	})
	if n > 1 {
		t.Errorf("%d-byte hello in %d records, fed a byte at a time: %v allocations, want 1", len(wire), MaxRecords, n)
	}
}

func BenchmarkParseClientHello(b *testing.B) {
	hello := helloFor(b, "api.example.com", 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(hello)))
	for b.Loop() {
		if _, err := Parse(hello); err != nil {
			b.Fatal(err)
		}
	}
}
