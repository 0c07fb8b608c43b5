package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestACLMatching(t *testing.T) {
	cases := []struct {
		acl  ACL
		rt   ResourceType
		name string
		op   Operation
		want bool
	}{
		{ACL{ResourceType: Topic, Pattern: "orders", PatternType: Literal, Operations: []Operation{Read}}, Topic, "orders", Read, true},
		{ACL{ResourceType: Topic, Pattern: "orders", PatternType: Literal, Operations: []Operation{Read}}, Topic, "orders", Write, false},
		{ACL{ResourceType: Topic, Pattern: "orders", PatternType: Literal, Operations: []Operation{Read}}, Topic, "orders", Describe, true},
		{ACL{ResourceType: Topic, Pattern: "orders", PatternType: Literal, Operations: []Operation{Read}}, Topic, "orders2", Read, false},
		{ACL{ResourceType: Topic, Pattern: "orders", PatternType: Literal, Operations: []Operation{Read}}, Group, "orders", Read, false},
		{ACL{ResourceType: Topic, Pattern: "logs.", PatternType: Prefix, Operations: []Operation{Write}}, Topic, "logs.app", Write, true},
		{ACL{ResourceType: Topic, Pattern: "logs.", PatternType: Prefix, Operations: []Operation{Write}}, Topic, "logsX", Write, false},
		{ACL{ResourceType: Topic, Pattern: "*", PatternType: Literal, Operations: []Operation{Read}}, Topic, "anything", Read, true},
		{ACL{ResourceType: Topic, Pattern: "*", PatternType: Literal, Operations: []Operation{Read}}, Topic, "__audit", Read, false},
		{ACL{ResourceType: Topic, Pattern: "", PatternType: Prefix, Operations: []Operation{Read}}, Topic, "__audit", Read, false},
		{ACL{ResourceType: Topic, Pattern: "__", PatternType: Prefix, Operations: []Operation{Read}}, Topic, "__audit", Read, false},
		{ACL{ResourceType: Topic, Pattern: "__audit", PatternType: Literal, Operations: []Operation{Read}}, Topic, "__audit", Read, true},
	}
	for i, c := range cases {
		c.acl.Principal = "p"
		got := c.acl.Matches(c.rt, c.name) && c.acl.Allows(c.op)
		if got != c.want {
			t.Errorf("case %d: %+v on %s %q %s = %v, want %v", i, c.acl, c.rt, c.name, c.op, got, c.want)
		}
	}
}

func TestACLValidate(t *testing.T) {
	good := ACL{Principal: "alice", ResourceType: Topic, Pattern: "x", Operations: []Operation{"READ", "read"}}
	if err := good.Validate(); err != nil || good.PatternType != Literal || len(good.Operations) != 1 {
		t.Fatalf("%v %+v", err, good)
	}
	for _, a := range []ACL{
		{Principal: "", ResourceType: Topic, Pattern: "x", Operations: []Operation{Read}},
		{Principal: "a b", ResourceType: Topic, Pattern: "x", Operations: []Operation{Read}},
		{Principal: "a", ResourceType: "table", Pattern: "x", Operations: []Operation{Read}},
		{Principal: "a", ResourceType: Topic, Pattern: "", Operations: []Operation{Read}},
		{Principal: "a", ResourceType: Topic, Pattern: "x y", Operations: []Operation{Read}},
		{Principal: "a", ResourceType: Topic, Pattern: "x", PatternType: "regex", Operations: []Operation{Read}},
		{Principal: "a", ResourceType: Topic, Pattern: "x"},
		{Principal: "a", ResourceType: Topic, Pattern: "x", Operations: []Operation{"all"}},
		{Principal: "a", ResourceType: Cluster, Pattern: "other", Operations: []Operation{Alter}},
	} {
		if err := a.Validate(); err == nil {
			t.Errorf("%+v: accepted", a)
		}
	}
	if p, pt, err := ParsePattern("logs.*"); err != nil || p != "logs." || pt != Prefix {
		t.Fatal(p, pt, err)
	}
	if p, pt, err := ParsePattern("*"); err != nil || p != "*" || pt != Literal {
		t.Fatal(p, pt, err)
	}
}

// FuzzACLPattern: parsing and matching never panic, and a reserved name
// is matched only by a literal pattern equal to it.
func FuzzACLPattern(f *testing.F) {
	for _, s := range []string{"orders", "logs.*", "*", "__audit", "", "a/b*", "\x00*"} {
		f.Add(s, "orders")
		f.Add(s, "__audit")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p, pt, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		a := ACL{Principal: "p", ResourceType: Topic, Pattern: p, PatternType: pt, Operations: []Operation{Read}}
		if err := a.Validate(); err != nil {
			t.Fatalf("ParsePattern accepted %q but Validate refused: %v", pattern, err)
		}
		m := a.Matches(Topic, name)
		if strings.HasPrefix(name, ReservedPrefix) && m && !(pt == Literal && p == name) {
			t.Fatalf("pattern %q (%s) matched reserved %q", p, pt, name)
		}
		if pt == Prefix && m != strings.HasPrefix(name, p) && !strings.HasPrefix(name, ReservedPrefix) {
			t.Fatalf("prefix %q vs %q", p, name)
		}
	})
}

func enc(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func signHS(secret []byte, hdr, claims map[string]any) string {
	s := enc(hdr) + "." + enc(claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(s))
	return s + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestJWT(t *testing.T) {
	dir := t.TempDir()
	secret := []byte(strings.Repeat("k", 40))
	sf := filepath.Join(dir, "secret")
	os.WriteFile(sf, secret, 0o600)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	jwks := map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "r1", "n": base64.RawURLEncoding.EncodeToString(rk.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": base64.RawURLEncoding.EncodeToString(ek.X.FillBytes(make([]byte, 32))), "y": base64.RawURLEncoding.EncodeToString(ek.Y.FillBytes(make([]byte, 32)))},
		{"kty": "OKP", "kid": "d1", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(edk.Public().(ed25519.PublicKey))},
	}}
	jf := filepath.Join(dir, "jwks.json")
	b, _ := json.Marshal(jwks)
	os.WriteFile(jf, b, 0o600)
	v, err := NewJWTVerifier(JWTConfig{JWKSFile: jf, HMACSecretFile: sf, Issuer: "https://idp", Audience: "weir"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	good := map[string]any{"sub": "alice", "iss": "https://idp", "aud": []string{"weir", "x"}, "exp": now + 300, "iat": now}
	sign := func(alg, kid string, claims map[string]any) string {
		hdr := map[string]any{"alg": alg, "typ": "JWT", "kid": kid}
		s := enc(hdr) + "." + enc(claims)
		h := sha256.Sum256([]byte(s))
		var sig []byte
		switch alg {
		case "RS256":
			sig, _ = rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, h[:])
		case "ES256":
			r, ss, _ := ecdsa.Sign(rand.Reader, ek, h[:])
			sig = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
		case "EdDSA":
			sig = ed25519.Sign(edk, []byte(s))
		}
		return s + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	for _, tok := range []string{
		sign("RS256", "r1", good), sign("ES256", "e1", good), sign("EdDSA", "d1", good),
		signHS(secret, map[string]any{"alg": "HS256"}, good),
	} {
		c, err := v.Verify(tok)
		if err != nil || c.Principal != "alice" {
			t.Errorf("good token refused: %v", err)
		}
	}
	expired := map[string]any{"sub": "alice", "iss": "https://idp", "aud": "weir", "exp": now - 3600}
	wrongAud := map[string]any{"sub": "alice", "iss": "https://idp", "aud": "other", "exp": now + 300}
	wrongIss := map[string]any{"sub": "alice", "iss": "https://evil", "aud": "weir", "exp": now + 300}
	noExp := map[string]any{"sub": "alice", "iss": "https://idp", "aud": "weir"}
	notYet := map[string]any{"sub": "alice", "iss": "https://idp", "aud": "weir", "exp": now + 7200, "nbf": now + 3600}
	none := enc(map[string]any{"alg": "none"}) + "." + enc(good) + "."
	tampered := sign("RS256", "r1", good)
	tampered = tampered[:len(tampered)-4] + "AAAA"
	otherSecret := signHS([]byte(strings.Repeat("z", 40)), map[string]any{"alg": "HS256"}, good)
	// HS256 signed with the RSA public key's bytes (algorithm confusion).
	confused := signHS(rk.N.Bytes(), map[string]any{"alg": "HS256", "kid": "r1"}, good)
	for name, tok := range map[string]string{
		"none": none, "expired": sign("RS256", "r1", expired), "aud": sign("ES256", "e1", wrongAud), "iss": sign("EdDSA", "d1", wrongIss),
		"noexp": sign("RS256", "r1", noExp), "nbf": sign("RS256", "r1", notYet), "tampered": tampered, "secret": otherSecret,
		"confused": confused, "garbage": "a.b.c", "kid": sign("RS256", "e1", good),
		"alg-mismatch": sign("ES256", "r1", good),
	} {
		if _, err := v.Verify(tok); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
}

// FuzzVerifyJWT: arbitrary tokens never panic and are never accepted.
func FuzzVerifyJWT(f *testing.F) {
	secret := []byte(strings.Repeat("k", 40))
	now := time.Now().Unix()
	f.Add(signHS(secret, map[string]any{"alg": "HS256"}, map[string]any{"sub": "a", "exp": now + 100}))
	f.Add(enc(map[string]any{"alg": "none"}) + "." + enc(map[string]any{"sub": "a"}) + ".")
	f.Add("a.b.c")
	f.Add("weir_abc")
	dir := f.TempDir()
	sf := filepath.Join(dir, "s")
	os.WriteFile(sf, secret, 0o600)
	v, err := NewJWTVerifier(JWTConfig{HMACSecretFile: sf})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(tok)
		if err != nil {
			return
		}
		// Accepted: it must carry a valid HMAC over its first two parts.
		parts := strings.Split(tok, ".")
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(parts[0] + "." + parts[1]))
		sig, _ := b64(parts[2])
		if !hmac.Equal(sig, m.Sum(nil)) || c.Principal == "" {
			t.Fatalf("accepted a token without a valid signature: %q", tok)
		}
	})
}

// FuzzParseJWKS: key sets from files never panic the parser.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"` + strings.Repeat("A", 60) + `"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) { ParseJWKS(b) })
}
