package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/weir-broker/weir/internal/server"
)

// serveSecurity holds weir serve's security flags (docs/security.md).
type serveSecurity struct {
	c                 server.SecurityConfig
	adminTokenFile    string
	clusterSecretFile string
}

func (s *serveSecurity) flags(f *pflag.FlagSet) {
	c := &s.c
	f.BoolVar(&c.Auth, "auth", false, "require credentials (tokens, JWTs or client certificates) and enforce ACLs (default deny)")
	f.StringVar(&c.AdminToken, "admin-token", "", "bootstrap admin token, ≥ 16 characters (env WEIR_ADMIN_TOKEN); the principal \"admin\"")
	f.StringVar(&s.adminTokenFile, "admin-token-file", "", "file holding the bootstrap admin token")
	f.StringVar(&c.ClusterSecret, "cluster-secret", "", "secret nodes authenticate to each other with (≥ 16 characters, the same on every node; env WEIR_CLUSTER_SECRET)")
	f.StringVar(&s.clusterSecretFile, "cluster-secret-file", "", "file holding the cluster secret")
	f.StringVar(&c.JWT.JWKSFile, "jwt-jwks", "", "JWKS file of keys that sign accepted JWTs (RS256, ES256, EdDSA, HS256)")
	f.StringVar(&c.JWT.PublicKeyFile, "jwt-key", "", "PEM public key (or certificate) that signs accepted JWTs")
	f.StringVar(&c.JWT.HMACSecretFile, "jwt-hmac-secret-file", "", "file with an HS256 secret (≥ 32 bytes) for accepted JWTs")
	f.StringVar(&c.JWT.Issuer, "jwt-issuer", "", "required JWT issuer (iss)")
	f.StringVar(&c.JWT.Audience, "jwt-audience", "", "required JWT audience (aud)")
	f.StringVar(&c.JWT.PrincipalClaim, "jwt-principal-claim", "sub", "JWT claim that names the principal")
	f.StringVar(&c.JWT.JWKSURL, "jwt-jwks-url", "", "JWKS URL (an OIDC issuer's jwks_uri; https) of keys that sign accepted JWTs: fetched at start, hourly and on an unknown kid (at most every 30 s)")
	f.Int64Var(&c.Audit.RetentionMs, "audit-retention-ms", 90*24*3600*1000, "retention of the __audit topic (when this node creates it)")
	f.IntVar(&c.MaxConnsPerPrincipal, "max-conns-per-principal", 1024, "WebSocket connections one principal may hold on this node")
	f.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate: serve HTTPS and WSS (TLS 1.2+)")
	f.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&c.TLSClientCA, "tls-client-ca", "", "PEM CA: require client certificates it signed (mTLS); the subject CN is the principal")
	f.StringVar(&c.TLSCA, "tls-ca", "", "PEM CA that verifies other nodes' HTTPS certificates (default: system roots + --tls-client-ca + --raft-tls-ca)")
	f.StringVar(&c.RaftTLSCA, "raft-tls-ca", "", "PEM CA for mutual TLS between nodes' Raft transports")
	f.StringVar(&c.RaftTLSCert, "raft-tls-cert", "", "PEM certificate of this node's Raft transport")
	f.StringVar(&c.RaftTLSKey, "raft-tls-key", "", "PEM key of --raft-tls-cert")
	f.BoolVar(&c.InsecureListenAny, "insecure-listen-any", false, "without --auth, listen on the --http-addr given even if it is not 127.0.0.1 (anyone reaching it has full access)")
}

func (s *serveSecurity) config() server.SecurityConfig {
	c := s.c
	read := func(file string, dst *string) {
		if file == "" || *dst != "" {
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "weir:", err)
			os.Exit(1)
		}
		*dst = strings.TrimSpace(string(b))
	}
	read(s.adminTokenFile, &c.AdminToken)
	read(s.clusterSecretFile, &c.ClusterSecret)
	return c
}
