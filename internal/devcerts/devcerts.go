// Package devcerts makes a throwaway certificate authority with server and
// client certificates, for `weir dev certs` and for tests of TLS and mTLS.
// Not for production: keys are ECDSA P-256, valid for a year.
package devcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

// CA is a certificate authority that signs leaf certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// Pair is a PEM certificate and key.
type Pair struct{ CertPEM, KeyPEM []byte }

// NewCA makes a self-signed CA named name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Weir dev"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("EC PRIVATE KEY", kb)}, nil
}

// Issue signs a certificate with subject common name cn, valid for TLS
// servers at hosts (DNS names or IPs) and as a TLS client.
func (ca *CA) Issue(cn string, hosts ...string) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Weir dev"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Pair{}, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("EC PRIVATE KEY", kb)}, nil
}

// WritePair writes name.pem and name-key.pem into dir and returns their paths.
func WritePair(dir, name string, p Pair) (string, string, error) {
	cf, kf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(cf, p.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(kf, p.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	return cf, kf, nil
}

// Write makes a CA, a server certificate (127.0.0.1, localhost and hosts;
// also usable between nodes and for Raft) and one client certificate per
// name in clients, in dir. It returns the files written.
func Write(dir string, hosts, clients []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ca, err := NewCA("Weir dev CA")
	if err != nil {
		return nil, err
	}
	files := []string{}
	cf, kf, err := WritePair(dir, "ca", Pair{ca.CertPEM, ca.KeyPEM})
	if err != nil {
		return nil, err
	}
	files = append(files, cf, kf)
	srv, err := ca.Issue("weir-node", append([]string{"127.0.0.1", "localhost", "::1"}, hosts...)...)
	if err != nil {
		return nil, err
	}
	if cf, kf, err = WritePair(dir, "server", srv); err != nil {
		return nil, err
	}
	files = append(files, cf, kf)
	for _, c := range clients {
		if c == "ca" || c == "server" || c == "" {
			return nil, fmt.Errorf("client name %q is reserved", c)
		}
		p, err := ca.Issue(c)
		if err != nil {
			return nil, err
		}
		if cf, kf, err = WritePair(dir, c, p); err != nil {
			return nil, err
		}
		files = append(files, cf, kf)
	}
	return files, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func pemBlock(t string, b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: t, Bytes: b})
}
