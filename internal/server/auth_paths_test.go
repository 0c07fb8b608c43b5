package server

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/weir-broker/weir/core/auth"

	"github.com/weir-broker/weir/internal/testclock"
)

// TestAuthPaths drives a node through a JWKS URL: a JWT whose sub is
// "admin" is an admin only once a principal "admin" exists as admin;
// internal topics refuse writes whatever the ACLs; repeated denials from
// one client are summarised in __audit.
func TestAuthPaths(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]any{{"kty": "RSA", "kid": "k1", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(rk.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(rk.E)).Bytes())}}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(jwks) }))
	defer idp.Close()
	clock := testclock.New(time.Now())
	s := securedNode(t, func(c *Config) {
		c.Security.JWT = auth.JWTConfig{JWKSURL: idp.URL + "/jwks", Issuer: "https://idp"}
		c.Security.Audit = auth.AuditConfig{PerSource: 3, Window: time.Hour, Now: clock.Now}
	})
	defer stop(t, s)
	c := newSecClient(t, s.URL(), "", nil)
	admin := c.with(testAdminToken)
	tok := func(sub string) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": sub, "iss": "https://idp", "exp": time.Now().Add(time.Hour).Unix()})
		tk.Header["kid"] = "k1"
		s, err := tk.SignedString(rk)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	whoami := func(token string) (int, map[string]any) {
		r := c.with(token).do("GET", "/v1/whoami", nil)
		var w map[string]any
		json.Unmarshal(r.Body, &w)
		return r.Status, w
	}

	// The node fetches the key set when it starts.
	jwtAdmin := tok("admin")
	deadline := time.Now().Add(20 * time.Second)
	for st, _ := whoami(jwtAdmin); st != 200; st, _ = whoami(jwtAdmin) {
		if time.Now().After(deadline) {
			t.Fatalf("JWT from the JWKS URL still refused: HTTP %d", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, w := whoami(jwtAdmin); w["admin"] != false || w["via"] != "jwt" {
		t.Fatalf("JWT sub admin without an admin principal: %v", w)
	}
	c.with(jwtAdmin).expect(403, "POST", "/v1/principals", map[string]any{"name": "x"})
	admin.expect(201, "POST", "/v1/principals", map[string]any{"name": "admin", "admin": true})
	if _, w := whoami(jwtAdmin); w["admin"] != true {
		t.Fatalf("JWT sub admin with an admin principal: %v", w)
	}

	// Internal topics: a * ACL with every operation does not reach them.
	alice := c.with(createToken(t, admin, "alice"))
	addACL(t, admin, "alice", auth.Topic, "*", auth.Literal, auth.Read, auth.Write, auth.Create, auth.Delete, auth.Alter)
	alice.expect(201, "POST", "/v1/topics", map[string]any{"name": "mine", "replication_factor": 1})
	produce := map[string]any{"records": []map[string]any{{"value": "x"}}}
	alice.expect(200, "POST", "/v1/topics/mine/records", produce)
	deadline = time.Now().Add(20 * time.Second)
	for admin.do("GET", "/v1/topics/__audit", nil).Status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("__audit never created")
		}
		time.Sleep(20 * time.Millisecond)
	}
	alice.expect(403, "POST", "/v1/topics/__audit/records", produce)
	alice.expect(403, "DELETE", "/v1/topics/__audit", nil)
	alice.expect(403, "POST", "/v1/topics", map[string]any{"name": "__mine", "replication_factor": 1})

	// Audit cap: a flood of bad credentials from one address is recorded
	// as at most PerSource events, then one summary.
	for range 20 {
		c.with("weir_nope").expect(401, "GET", "/v1/topics", nil)
	}
	clock.Add(time.Hour)
	c.with("weir_nope").expect(401, "GET", "/v1/topics", nil)
	var summary *auth.Event
	deadline = time.Now().Add(20 * time.Second)
	for summary == nil {
		if time.Now().After(deadline) {
			t.Fatal("no suppressed event in __audit")
		}
		time.Sleep(20 * time.Millisecond)
		for _, e := range auditEvents(t, admin) {
			if e.Result == "suppressed" {
				summary = &e
			}
		}
	}
	if summary.Source != "127.0.0.1" || summary.Count < 20 {
		t.Errorf("summary %+v: want source 127.0.0.1 and at least 20 suppressed", *summary)
	}
	var denials int
	for _, e := range auditEvents(t, admin) {
		if e.Result == "denied" || e.Result == "unauthenticated" {
			denials++
		}
	}
	if denials > 3+1 { // PerSource in the first window, one in the next
		t.Errorf("%d denials recorded one by one, want at most 4", denials)
	}
}
