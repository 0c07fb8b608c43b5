package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/internal/peer"
	"github.com/weir-broker/weir/raftlog"
)

// SecurityConfig turns on TLS, authentication and authorization
// (docs/security.md). The zero value is today's try-out mode: plain HTTP,
// no credentials, and the HTTP listener forced onto 127.0.0.1.
type SecurityConfig struct {
	// Auth requires credentials on every request except health checks and
	// static pages; ACLs decide what each principal may do (default deny).
	Auth bool
	// AdminToken authenticates the bootstrap admin ("admin").
	AdminToken string
	// ClusterSecret authenticates nodes to each other on internal
	// endpoints and join; required with Auth in a cluster.
	ClusterSecret string
	JWT           auth.JWTConfig
	Audit         auth.AuditConfig
	// MaxConnsPerPrincipal bounds WebSocket connections per principal and
	// node; default 1024.
	MaxConnsPerPrincipal int

	// TLSCert and TLSKey (PEM files) serve HTTPS and WSS, TLS 1.2 minimum.
	TLSCert, TLSKey string
	// TLSClientCA (PEM) requires client certificates signed by it (mTLS);
	// the certificate's subject common name is the principal.
	TLSClientCA string
	// TLSCA (PEM) verifies other nodes' HTTPS certificates; default the
	// system roots plus TLSClientCA and RaftTLSCA.
	TLSCA string

	// RaftTLSCA, RaftTLSCert, RaftTLSKey secure Raft traffic with mutual
	// TLS: a node without a certificate signed by RaftTLSCA can neither
	// join nor read replication traffic.
	RaftTLSCA, RaftTLSCert, RaftTLSKey string

	// InsecureListenAny lets a node without Auth listen beyond 127.0.0.1.
	InsecureListenAny bool
}

// TLS reports whether the HTTP listener serves TLS.
func (c SecurityConfig) TLS() bool { return c.TLSCert != "" }

func (c SecurityConfig) validate(cluster bool) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	}
	raft := []string{c.RaftTLSCA, c.RaftTLSCert, c.RaftTLSKey}
	set := 0
	for _, v := range raft {
		if v != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		return errors.New("--raft-tls-ca, --raft-tls-cert and --raft-tls-key go together")
	}
	if c.Auth && cluster && c.ClusterSecret == "" {
		return errors.New("--auth in a cluster needs --cluster-secret (the same on every node): nodes authenticate to each other with it")
	}
	if c.ClusterSecret != "" && len(c.ClusterSecret) < 16 {
		return errors.New("--cluster-secret must be at least 16 characters")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		return errors.New("the admin token must be at least 16 characters")
	}
	return nil
}

// listenAddr forces a node without authentication onto the loopback
// interface unless InsecureListenAny.
func (c SecurityConfig) listenAddr(addr string, log func(msg string, args ...any)) string {
	if c.Auth || c.InsecureListenAny {
		return addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return addr
	}
	log("authentication is off: listening on 127.0.0.1 only (not "+host+"); use --auth, or --insecure-listen-any to expose an unauthenticated node",
		"requested", addr)
	return net.JoinHostPort("127.0.0.1", port)
}

// serverTLS is the HTTP listener's TLS configuration.
func (c SecurityConfig) serverTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	if c.TLSClientCA != "" {
		pool, err := loadPool(nil, c.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// clientTLS is the node-to-node client configuration: it trusts TLSCA (or
// the system roots plus the client and Raft CAs) and presents the node's
// own certificate, which mTLS listeners require.
func (c SecurityConfig) clientTLS() (*tls.Config, error) {
	if !c.TLS() {
		return nil, nil
	}
	var pool *x509.CertPool
	var err error
	if c.TLSCA != "" {
		pool, err = loadPool(x509.NewCertPool(), c.TLSCA)
	} else {
		pool, _ = x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range []string{c.TLSClientCA, c.RaftTLSCA} {
			if f != "" {
				if pool, err = loadPool(pool, f); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}

func loadPool(pool *x509.CertPool, file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// applyRaft plumbs Raft mutual TLS into the store's configuration.
func (c SecurityConfig) applyRaft(rc *raftlog.Config) {
	if c.RaftTLSCA != "" {
		rc.MutualTLS, rc.CAFile, rc.CertFile, rc.KeyFile = true, c.RaftTLSCA, c.RaftTLSCert, c.RaftTLSKey
	}
}

// forwarderConfig is the node-to-node client's security.
func (c SecurityConfig) forwarderConfig() (peer.ForwarderConfig, error) {
	tc, err := c.clientTLS()
	if err != nil {
		return peer.ForwarderConfig{}, fmt.Errorf("node-to-node TLS: %w", err)
	}
	return peer.ForwarderConfig{TLS: tc, Secret: c.ClusterSecret}, nil
}

// authConfig is the security service's configuration.
func (c SecurityConfig) authConfig() auth.Config {
	return auth.Config{Enabled: c.Auth, AdminToken: c.AdminToken, ClusterSecret: c.ClusterSecret, JWT: c.JWT,
		Audit: c.Audit, MaxConnsPerPrincipal: c.MaxConnsPerPrincipal}
}
