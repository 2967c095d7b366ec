package main

import (
	"strings"
	"testing"
)

func TestParseExplainTarget(t *testing.T) {
	tests := []struct {
		arg, host string
		port      uint16
		err       string
	}{
		{"https://central.sophos.com/", "central.sophos.com", 443, ""},
		{"HTTPS://central.sophos.com", "central.sophos.com", 443, ""},
		{"http://crl.example.net/ca.crl", "crl.example.net", 80, ""},
		{"https://api.example.org:8443/v1?x=1", "api.example.org", 8443, ""},
		{"https://[2001:db8::1]/", "2001:db8::1", 443, ""},
		{"https://user:pw@example.org/", "example.org", 443, ""},
		{"central.sophos.com/manage", "central.sophos.com", 443, ""},
		{"example.org:22/x", "example.org", 22, ""},
		{"example.org", "example.org", 443, ""},
		{"[2001:db8::1]:8443", "2001:db8::1", 8443, ""},
		{"ftp://files.example.org/", "", 0, "for ftp, write HOST:PORT"},
		{"https:///path", "", 0, "names no host"},
		{"https://example.org:0/", "", 0, `port "0" is not 1-65535`},
		{"https://example.org:99999/", "", 0, "not 1-65535"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			host, port, err := parseExplainTarget(tt.arg)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseExplainTarget(%q) error = %v, want one containing %q", tt.arg, err, tt.err)
				}
				return
			}
			if err != nil || host != tt.host || port != tt.port {
				t.Fatalf("parseExplainTarget(%q) = %q, %d, %v; want %q, %d", tt.arg, host, port, err, tt.host, tt.port)
			}
		})
	}
}

func TestParsePACProxy(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"gate.example.org:3128", "gate.example.org:3128", ""},
		{"http://gate.example.org:3128", "gate.example.org:3128", ""},
		{"HTTP://gate.example.org:3128/", "gate.example.org:3128", ""},
		{"http://[2001:db8::5]:3128", "[2001:db8::5]:3128", ""},
		{"https://gate.example.org:3129", "https://gate.example.org:3129", ""},
		{"socks5://gate.example.org:1080", "", "plain-HTTP proxy"},
		{"http://gate.example.org", "", "write gate.example.org:3128"},
		{"gate.example.org", "", "write gate.example.org:3128"},
		{"http://gate.example.org:3128/proxy.pac", "", "write only the proxy's HOST:PORT, like gate.example.org:3128"},
		{"http://u:p@gate.example.org:3128", "", "write only the proxy's HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parsePACProxy(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parsePACProxy(%q) error = %v, want one containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parsePACProxy(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
