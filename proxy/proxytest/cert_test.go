package proxytest

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

// TestCertVerifies checks that Pool trusts the certificate for each name
// it was made for, and for no other, and that Write's files load.
func TestCertVerifies(t *testing.T) {
	c := NewCert(t, 7, "ok.example.org", "127.0.0.1")
	for _, name := range []string{"ok.example.org", "127.0.0.1"} {
		if _, err := c.TLS.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: c.Pool}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.TLS.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example.org", Roots: c.Pool}); err == nil {
		t.Error("other.example.org verified")
	}
	if _, err := c.TLS.Leaf.Verify(x509.VerifyOptions{DNSName: "ok.example.org"}); err == nil {
		t.Error("verified without Pool: the system roots trust a test certificate")
	}
	certFile, keyFile := c.Write(t, t.TempDir())
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Error(err)
	}
}
