package proxytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Cert is a self-signed certificate and the pool that trusts it. No test
// then depends on the system roots or on key material kept in the tree.
type Cert struct {
	TLS  tls.Certificate
	Pool *x509.CertPool
	key  *ecdsa.PrivateKey
}

// NewCert is GenerateCert for a test, which it fails on an error.
func NewCert(t TB, serial int64, names ...string) *Cert {
	t.Helper()
	c, err := GenerateCert(serial, names...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// GenerateCert makes a self-signed ECDSA P-256 certificate with serial for
// names, each a DNS name or an IP address, valid from an hour ago for a
// day (longer than any load run). It is its own CA, so Pool trusts it and
// nothing else does.
func GenerateCert(serial int64, names ...string) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a test key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "egressgate test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing a test certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing a test certificate: %w", err)
	}
	c := &Cert{TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, Pool: x509.NewCertPool(), key: key}
	c.Pool.AddCert(leaf)
	return c, nil
}

// Write writes the certificate and its key as PEM to dir/cert.pem and
// dir/key.pem, each through a rename so that a reader never sees half a
// file (the key first: a reader that sees the new certificate finds its
// key), and returns their paths.
func (c *Cert) Write(t TB, dir string) (certFile, keyFile string) {
	t.Helper()
	kder, err := x509.MarshalECPrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeRenamed(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	writeRenamed(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.TLS.Certificate[0]}))
	return certFile, keyFile
}

// writeRenamed writes data to path through a temporary file beside it.
func writeRenamed(t TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}
