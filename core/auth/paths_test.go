package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/weir-broker/weir/core"

	"github.com/weir-broker/weir/internal/testclock"
)

// catalogStore is an in-memory catalog; the rest of core.Store is unused
// by these tests (calling it panics).
type catalogStore struct {
	core.Store
	mu      sync.Mutex
	tables  map[string]map[string][]byte
	changed chan struct{}
}

func newCatalogStore() *catalogStore {
	return &catalogStore{tables: map[string]map[string][]byte{}, changed: make(chan struct{})}
}

func (c *catalogStore) bump() { close(c.changed); c.changed = make(chan struct{}) }

func (c *catalogStore) CatalogPut(_ context.Context, table, key string, v []byte, cond core.CatalogCond) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tables[table]
	if t == nil {
		t = map[string][]byte{}
		c.tables[table] = t
	}
	if _, ok := t[key]; ok && cond.IfAbsent {
		return false, nil
	}
	t[key] = v
	c.bump()
	return true, nil
}

func (c *catalogStore) CatalogDelete(_ context.Context, table, key string, _ core.CatalogCond) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.tables[table][key]
	delete(c.tables[table], key)
	c.bump()
	return ok, nil
}

func (c *catalogStore) CatalogGet(table, key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.tables[table][key]
	return v, ok
}

func (c *catalogStore) CatalogList(table string) map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range c.tables[table] {
		out[k] = v
	}
	return out
}

func (c *catalogStore) CatalogChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

const testBootstrap = "bootstrap-token-0123456789"

// TestAdminDecision: every credential path decides admin by the stored
// principal, never by the name "admin" alone.
func TestAdminDecision(t *testing.T) {
	dir := t.TempDir()
	secret := []byte(strings.Repeat("k", 40))
	sf := filepath.Join(dir, "secret")
	os.WriteFile(sf, secret, 0o600)
	jwtFor := func(sub string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	newSvc := func(t *testing.T) *Service {
		s, err := New(newCatalogStore(), Config{Enabled: true, AdminToken: testBootstrap, JWT: JWTConfig{HMACSecretFile: sf},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()

	t.Run("bootstrap", func(t *testing.T) {
		p, err := newSvc(t).Authenticate(testBootstrap)
		if err != nil || !p.Admin || p.Name != BootstrapPrincipal {
			t.Fatal(p, err)
		}
	})
	t.Run("no admin principal stored", func(t *testing.T) {
		s := newSvc(t)
		if p, err := s.Authenticate(jwtFor("admin")); err != nil || p.Admin || p.Via != "jwt" {
			t.Errorf("JWT sub admin: %+v %v", p, err)
		}
		if p, err := s.AuthenticateCert("admin"); err != nil || p.Admin {
			t.Errorf("mTLS CN admin: %+v %v", p, err)
		}
		tok, _, _, err := s.CreateToken(ctx, "admin", false, "test")
		if err != nil {
			t.Fatal(err)
		}
		if p, err := s.Authenticate(tok); err != nil || p.Admin {
			t.Errorf("API token of a non-admin principal named admin: %+v %v", p, err)
		}
		// Such a principal may not create a pipeline: it would run with
		// the bootstrap admin's rights.
		s.AddACL(ctx, ACL{Principal: "admin", ResourceType: Pipeline, Pattern: "*", Operations: []Operation{Create}}, "test")
		if s.Allowed(Principal{Name: "admin", Via: "jwt"}, Pipeline, "p", Create) {
			t.Error("a non-admin principal named admin may create pipelines")
		}
	})
	t.Run("admin principal stored", func(t *testing.T) {
		s := newSvc(t)
		tok, _, _, err := s.CreateToken(ctx, "admin", true, "test")
		if err != nil {
			t.Fatal(err)
		}
		if p, err := s.Authenticate(tok); err != nil || !p.Admin || p.Via != "token" {
			t.Errorf("token: %+v %v", p, err)
		}
		if p, err := s.Authenticate(jwtFor("admin")); err != nil || !p.Admin {
			t.Errorf("JWT: %+v %v", p, err)
		}
		if p, err := s.AuthenticateCert("admin"); err != nil || !p.Admin {
			t.Errorf("mTLS: %+v %v", p, err)
		}
	})
	t.Run("other admin principal", func(t *testing.T) {
		s := newSvc(t)
		s.CreateToken(ctx, "ops", true, "test")
		s.CreateToken(ctx, "bob", false, "test")
		for _, c := range []struct {
			name string
			want bool
		}{{"ops", true}, {"bob", false}, {"nobody", false}} {
			pj, err := s.Authenticate(jwtFor(c.name))
			pc, err2 := s.AuthenticateCert(c.name)
			if err != nil || err2 != nil || pj.Admin != c.want || pc.Admin != c.want {
				t.Errorf("%s: jwt %+v mtls %+v, want admin %v (%v %v)", c.name, pj, pc, c.want, err, err2)
			}
		}
	})
}

// TestInternalTopics: no ACL lets a non-admin write, create, delete or
// alter a topic named __*; a literal ACL still lets it read.
func TestInternalTopics(t *testing.T) {
	ctx := context.Background()
	s, err := New(newCatalogStore(), Config{Enabled: true, AdminToken: testBootstrap})
	if err != nil {
		t.Fatal(err)
	}
	all := []Operation{Read, Write, Create, Delete, Alter}
	for _, a := range []ACL{
		{Principal: "eve", ResourceType: Topic, Pattern: "*", Operations: all},
		{Principal: "eve", ResourceType: Topic, Pattern: "", PatternType: Prefix, Operations: all},
		{Principal: "eve", ResourceType: Topic, Pattern: "__audit", Operations: all},
	} {
		if _, err := s.AddACL(ctx, a, "test"); err != nil {
			t.Fatal(err)
		}
	}
	eve := Principal{Name: "eve", Via: "token"}
	for _, c := range []struct {
		topic string
		op    Operation
		want  bool
	}{
		{"__audit", Write, false}, {"__audit", Create, false}, {"__audit", Delete, false}, {"__audit", Alter, false},
		{"__other", Write, false}, {"__other", Read, false},
		{"__audit", Read, true}, {"__audit", Describe, true},
		{"orders", Write, true}, {"orders", Delete, true},
	} {
		t.Run(c.topic+"/"+string(c.op), func(t *testing.T) {
			if got := s.Allowed(eve, Topic, c.topic, c.op); got != c.want {
				t.Errorf("eve %s %s = %v, want %v", c.op, c.topic, got, c.want)
			}
			if !s.Allowed(NodeAuth, Topic, c.topic, c.op) || !s.Allowed(Principal{Name: "root", Admin: true}, Topic, c.topic, c.op) {
				t.Error("an admin or node was refused")
			}
		})
	}
	if s.AllowedAll(eve, Topic, Write) {
		t.Error("AllowedAll topic write covers internal topics")
	}
	if !s.AllowedAll(eve, Topic, Describe) {
		t.Error("AllowedAll topic describe refused")
	}
	if s.PrincipalAllowed("eve", "topic", "__audit", "write") {
		t.Error("a pipeline of eve may write __audit")
	}
}

// jwksServer publishes an RSA and an EC key set that tests change.
type jwksServer struct {
	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    []byte
}

func newJWKSServer(t *testing.T) *jwksServer {
	j := &jwksServer{}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		j.mu.Lock()
		defer j.mu.Unlock()
		w.Write(j.body)
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *jwksServer) publish(keys ...map[string]any) {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	j.mu.Lock()
	j.body = b
	j.mu.Unlock()
}

func rsaJWK(kid string, k *rsa.PrivateKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PrivateKey) map[string]any {
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(k.X.FillBytes(make([]byte, 32))), "y": base64.RawURLEncoding.EncodeToString(k.Y.FillBytes(make([]byte, 32)))}
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestJWKSURL: keys are fetched by Run, an unknown kid refetches at most
// once per JWKSMinInterval, and RSA and EC keys both verify.
func TestJWKSURL(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ek2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	j := newJWKSServer(t)
	j.publish(rsaJWK("r1", rk), map[string]any{"kty": "oct", "kid": "h", "k": strings.Repeat("A", 60)},
		map[string]any{"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"})
	clock := testclock.New(time.Now())
	v, err := NewJWTVerifier(JWTConfig{JWKSURL: j.srv.URL + "/jwks", Issuer: "https://idp", JWKSRefresh: -1, Now: clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(m jwt.SigningMethod, kid string, key any) string {
		tk := jwt.NewWithClaims(m, jwt.MapClaims{"sub": "carol", "iss": "https://idp", "exp": clock.Now().Add(time.Hour).Unix()})
		tk.Header["kid"] = kid
		s, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rsaTok := sign(jwt.SigningMethodRS256, "r1", rk)
	if _, err := v.Verify(rsaTok); err == nil {
		t.Fatal("verified before Run fetched any key")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { v.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	waitUntil(t, "the first fetch", func() bool { return len(v.jwks.current()) > 0 })
	if c, err := v.Verify(rsaTok); err != nil || c.Principal != "carol" {
		t.Fatalf("RSA key from the URL: %v", err)
	}
	if n := len(v.jwks.current()); n != 1 {
		t.Errorf("%d keys kept, want only the RSA one (oct and P-384 skipped)", n)
	}
	// An HS256 token signed with the published oct key is refused.
	if _, err := v.Verify(sign(jwt.SigningMethodHS256, "h", make([]byte, 45))); err == nil {
		t.Error("HS256 with a published oct key accepted")
	}
	// Rotation: a new EC key under a new kid is picked up by one refetch
	// once the bound has passed, not before.
	j.publish(rsaJWK("r1", rk), ecJWK("e1", ek))
	ecTok := sign(jwt.SigningMethodES256, "e1", ek)
	before := j.fetches.Load()
	for range 5 {
		if _, err := v.Verify(ecTok); err == nil {
			t.Fatal("unknown kid accepted within the bound")
		}
	}
	if n := j.fetches.Load() - before; n != 0 {
		t.Fatalf("%d fetches within JWKSMinInterval of the first", n)
	}
	clock.Add(31 * time.Second)
	if c, err := v.Verify(ecTok); err != nil || c.Principal != "carol" {
		t.Fatalf("EC key after refetch: %v", err)
	}
	if n := j.fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches for a new kid, want 1", n)
	}
	// A flood of unknown kids costs nothing more until the bound passes.
	for i := range 20 {
		v.Verify(sign(jwt.SigningMethodES256, fmt.Sprint("x", i), ek2))
	}
	if n := j.fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches after a flood of unknown kids, want 1", n)
	}
	clock.Add(31 * time.Second)
	v.Verify(sign(jwt.SigningMethodES256, "x", ek2))
	if n := j.fetches.Load() - before; n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// Alg confusion: HS256 "signed" with the RSA key's modulus.
	conf := sign(jwt.SigningMethodHS256, "r1", rk.N.Bytes())
	if _, err := v.Verify(conf); err == nil {
		t.Error("HS256 signed with an RSA public key accepted")
	}
}

func TestJWKSConfig(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://idp.example/.well-known/jwks.json", true},
		{"http://127.0.0.1:8080/jwks", true},
		{"http://localhost/jwks", true},
		{"http://idp.example/jwks", false},
		{"file:///etc/jwks", false},
		{"/jwks", false},
	} {
		if err := (JWTConfig{JWKSURL: c.url}).Validate(); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.url, err)
		}
	}
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 2048) + `]}`))
	}))
	defer big.Close()
	v, err := NewJWTVerifier(JWTConfig{JWKSURL: big.URL, JWKSMaxBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.jwks.fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("oversized key set: %v", err)
	}
}

// drain returns the queued audit events.
func drain(a *auditor) []Event {
	var out []Event
	for {
		select {
		case e := <-a.ch:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestAuditCaps(t *testing.T) {
	clock := testclock.New(time.Unix(1_764_000_000, 0))
	a := newAuditor(nil, AuditConfig{PerSource: 3, Window: time.Minute, MaxSources: 2, Now: clock.Now},
		slog.New(slog.NewTextHandler(io.Discard, nil)))

	t.Run("bounded fields", func(t *testing.T) {
		long := strings.Repeat("é", 3000)
		a.add(Event{Principal: "p", Action: "GET /" + long, Result: "ok", Source: long, Reason: long})
		e := drain(a)[0]
		for _, f := range []string{e.Action, e.Source, e.Reason} {
			if len(f) > MaxAuditField || !strings.HasSuffix(f, "…") || !strings.HasPrefix(f, "GET /é") && !strings.HasPrefix(f, "é") {
				t.Errorf("field not bounded: %d bytes", len(f))
			}
		}
		b, _ := json.Marshal(e)
		if len(b) > 8*MaxAuditField+256 {
			t.Errorf("record of %d bytes", len(b))
		}
	})
	t.Run("per source", func(t *testing.T) {
		for i := range 10 {
			a.add(Event{Action: "GET /x", Result: "unauthenticated", Status: 401, Source: fmt.Sprintf("10.0.0.1:%d", 1000+i)})
		}
		a.add(Event{Principal: "admin", Action: "POST /v1/topics", Result: "ok", Source: "10.0.0.1:1"})
		got := drain(a)
		if len(got) != 4 {
			t.Fatalf("%d events recorded, want 3 denials and the admin action", len(got))
		}
		clock.Add(time.Minute)
		a.add(Event{Action: "GET /x", Result: "unauthenticated", Source: "10.0.0.1:5"})
		got = drain(a)
		if len(got) != 2 || got[0].Result != "suppressed" || got[0].Count != 7 || got[0].Source != "10.0.0.1" || got[1].Result != "unauthenticated" {
			t.Fatalf("after the window: %+v", got)
		}
	})
	t.Run("flush at window end", func(t *testing.T) {
		for range 5 {
			a.add(Event{Principal: "mallory", Result: "denied", Status: 403, Source: "10.0.0.9:1"})
		}
		drain(a)
		clock.Add(time.Minute)
		a.flush()
		got := drain(a)
		var n int
		for _, e := range got {
			if e.Result == "suppressed" && e.Source == "10.0.0.9" {
				n += e.Count
			}
		}
		if n != 2 {
			t.Fatalf("summary: %+v", got)
		}
	})
	t.Run("bounded sources", func(t *testing.T) {
		for i := range 100 {
			for range 5 {
				a.add(Event{Result: "denied", Source: fmt.Sprintf("10.1.0.%d:1", i)})
			}
		}
		got := drain(a)
		a.mu.Lock()
		n := len(a.sources)
		a.mu.Unlock()
		if n > 2 {
			t.Fatalf("%d sources tracked, cap 2", n)
		}
		var suppressed int
		for _, e := range got {
			if e.Result == "suppressed" {
				suppressed += e.Count
			}
		}
		// Every evicted source's count is recorded; the last two are still open.
		if suppressed != 98*2 {
			t.Fatalf("suppressed %d, want %d", suppressed, 98*2)
		}
	})
}
