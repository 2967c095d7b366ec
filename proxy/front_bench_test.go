package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

// The front end's per-tunnel work, benchmarked with its allocations:
// reading and checking a CONNECT head, and a whole short tunnel through
// loopback sockets (connect, CONNECT, 200, ClientHello on an SNI port,
// one byte back, close), as egressbench's rate scenarios do it.

// BenchmarkFrontHead reads and checks one CONNECT head, as serveFront
// does before ServeHTTP.
func BenchmarkFrontHead(b *testing.B) {
	const head = "CONNECT api.example.org:443 HTTP/1.1\r\nHost: api.example.org:443\r\nUser-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n"
	sr := strings.NewReader(head)
	br := bufio.NewReaderSize(sr, 4096)
	b.ReportAllocs()
	for b.Loop() {
		sr.Reset(head)
		br.Reset(sr)
		r, err := http.ReadRequest(br)
		if err != nil {
			b.Fatal(err)
		}
		if err := checkHead(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnectTunnel opens and closes one tunnel per iteration. Its
// allocations and the goroutines it reports started are the whole
// process's: the proxy's, and the benchmark's own client and upstream (a
// dial, a few reads and writes, a close on each side; the upstream serves
// each connection on a goroutine of its own).
func BenchmarkConnectTunnel(b *testing.B) {
	up := echoServer(b, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 2048)
		if _, err := c.Read(buf); err == nil {
			c.Write([]byte{'G'})
		}
	})
	port := portOf(b, up)
	target := fmt.Sprintf("bench.example.org:%d", port)
	hello := clientHello(b, "bench.example.org")
	for _, tc := range []struct {
		name  string
		sni   bool
		first []byte
	}{
		{"plain", false, []byte{'x'}},
		{"sni", true, hello},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{Rules: StaticRules{testMatcher(b, target)}, Hosts: hostsFor("bench.example.org"), AllowDest: loopbackDest}
			if tc.sni {
				cfg.SNIPorts = []uint16{port}
			}
			addr, _ := startProxy(b, cfg)
			req := []byte("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n")
			buf := make([]byte, 512)
			b.ReportAllocs()
			started := goroutinesCreated()
			for b.Loop() {
				if err := shortTunnel(addr, req, tc.first, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(goroutinesCreated()-started)/float64(b.N), "goroutines/op")
		})
	}
}

// goroutinesCreated is the number of goroutines the process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// shortTunnel is one tunnel of BenchmarkConnectTunnel.
func shortTunnel(addr string, req, first, buf []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	want := len(established)
	if _, err := io.ReadFull(c, buf[:want]); err != nil {
		return fmt.Errorf("reading the 200: %w", err)
	}
	if string(buf[:want]) != string(established) {
		return fmt.Errorf("CONNECT = %q", buf[:want])
	}
	if _, err := c.Write(first); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		return fmt.Errorf("reading the upstream's byte: %w", err)
	}
	return nil
}
