package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/internal/devcerts"
	tu "github.com/weir-broker/weir/internal/testutil"
)

const testAdminToken = "admin-token-0123456789"

// secClient is an HTTP client of the API with optional token and TLS.
type secClient struct {
	t     *testing.T
	base  string
	token string
	hc    *http.Client
}

func newSecClient(t *testing.T, base, token string, tc *tls.Config) *secClient {
	return &secClient{t: t, base: base, token: token, hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}}
}

func (c *secClient) with(token string) *secClient {
	cp := *c
	cp.token = token
	return &cp
}

func (c *secClient) try(method, path string, body any, hdr ...string) (*tu.Response, error) {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return &tu.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

func (c *secClient) do(method, path string, body any, hdr ...string) *tu.Response {
	c.t.Helper()
	r, err := c.try(method, path, body, hdr...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// expect checks a status and returns the response.
func (c *secClient) expect(status int, method, path string, body any) *tu.Response {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.Status != status {
		c.t.Fatalf("%s %s as %q: HTTP %d %s, want %d", method, path, c.token, r.Status, r.Body, status)
	}
	return r
}

func createToken(t *testing.T, admin *secClient, name string) string {
	t.Helper()
	var out struct{ Token, TokenID string }
	r := admin.expect(201, "POST", "/v1/principals", map[string]any{"name": name})
	r.JSON(t, &out)
	if !strings.HasPrefix(out.Token, auth.TokenPrefix) {
		t.Fatalf("token %q", out.Token)
	}
	return out.Token
}

func addACL(t *testing.T, admin *secClient, principal string, rt auth.ResourceType, pattern string, pt auth.PatternType, ops ...auth.Operation) string {
	t.Helper()
	var out auth.ACL
	admin.expect(201, "POST", "/v1/acls", auth.ACL{Principal: principal, ResourceType: rt, Pattern: pattern, PatternType: pt, Operations: ops}).JSON(t, &out)
	return out.ID
}

func securedNode(t testing.TB, mod ...func(*Config)) *Server {
	return startNode(t, t.TempDir(), append([]func(*Config){func(c *Config) {
		c.Security.Auth = true
		c.Security.AdminToken = testAdminToken
	}}, mod...)...)
}

// auditEvents reads the __audit topic.
func auditEvents(t *testing.T, admin *secClient) []auth.Event {
	r, err := admin.try("GET", "/v1/topics/__audit/partitions/0/records?max_records=10000", nil)
	if err != nil || r.Status != 200 {
		return nil
	}
	var out struct {
		Records []struct{ Value json.RawMessage } `json:"records"`
	}
	json.Unmarshal(r.Body, &out)
	var evs []auth.Event
	for _, rec := range out.Records {
		var s string
		json.Unmarshal(rec.Value, &s)
		var e auth.Event
		if json.Unmarshal([]byte(s), &e) != nil {
			json.Unmarshal(rec.Value, &e) // an object value is returned as JSON
		}
		evs = append(evs, e)
	}
	return evs
}

func TestSecurityTokensACLsAudit(t *testing.T) {
	s := securedNode(t)
	defer stop(t, s)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	anon := admin.with("")

	// Public endpoints stay open; everything else needs credentials.
	anon.expect(200, "GET", "/healthz", nil)
	if r := anon.expect(401, "GET", "/v1/topics", nil); r.ErrorCode() != "unauthenticated" || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("%s %v", r.Body, r.Header)
	}
	anon.with("weir_not-a-token").expect(401, "GET", "/v1/topics", nil)
	anon.with("garbage").expect(401, "GET", "/v1/topics", nil)
	admin.expect(200, "GET", "/v1/whoami", nil)

	alice := admin.with(createToken(t, admin, "alice"))
	var who map[string]any
	alice.expect(200, "GET", "/v1/whoami", nil).JSON(t, &who)
	if who["principal"] != "alice" || who["admin"] != false {
		t.Fatal(who)
	}
	// Default deny, and no admin endpoints for non-admins.
	if r := alice.expect(403, "POST", "/v1/topics", map[string]any{"name": "orders"}); r.ErrorCode() != "forbidden" {
		t.Fatal(string(r.Body))
	}
	alice.expect(403, "POST", "/v1/principals", map[string]any{"name": "mallory", "admin": true})
	alice.expect(403, "POST", "/v1/acls", auth.ACL{Principal: "alice", ResourceType: auth.Topic, Pattern: "*", Operations: []auth.Operation{auth.Write}})
	alice.expect(403, "GET", "/v1/internal/node", nil)
	if r := alice.do("GET", "/v1/internal/node", nil, "Weir-Node-Secret", "wrong-secret-0123456789"); r.Status != 401 {
		t.Fatalf("wrong node secret: %d", r.Status)
	}

	// The ACL matrix: each operation denied, then allowed by an ACL.
	produce := map[string]any{"records": []map[string]any{{"value": "v"}}}
	steps := []struct {
		op            auth.Operation
		rt            auth.ResourceType
		pattern       string
		method, path  string
		body          any
		allowedStatus int
		prefix        bool
	}{
		{auth.Create, auth.Topic, "made", "POST", "/v1/topics", map[string]any{"name": "made", "replication_factor": 1}, 201, false},
		{auth.Describe, auth.Topic, "orders", "GET", "/v1/topics/orders", nil, 200, false},
		{auth.Write, auth.Topic, "orders", "POST", "/v1/topics/orders/records", produce, 200, false},
		{auth.Read, auth.Topic, "orders", "GET", "/v1/topics/orders/partitions/0/records", nil, 200, false},
		{auth.Describe, auth.Group, "g1", "GET", "/v1/groups/g1/offsets?topic=orders", nil, 200, false},
		{auth.Read, auth.Group, "g1", "POST", "/v1/groups/g1/offsets", map[string]any{"offsets": []map[string]any{{"topic": "orders", "partition": 0, "offset": 1}}}, 204, false},
		{auth.Describe, auth.Cluster, "cluster", "GET", "/v1/stats", nil, 200, false},
		{auth.Alter, auth.Cluster, "cluster", "POST", "/v1/cluster/rebalance", nil, 202, false},
		{auth.Create, auth.Topic, "logs.", "POST", "/v1/topics", map[string]any{"name": "logs.app", "replication_factor": 1}, 201, true},
		{auth.Delete, auth.Topic, "logs.app", "DELETE", "/v1/topics/logs.app", nil, 204, false},
	}
	admin.expect(201, "POST", "/v1/topics", map[string]any{"name": "orders", "replication_factor": 1})
	for _, st := range steps {
		if r := alice.do(st.method, st.path, st.body); r.Status != 403 {
			t.Fatalf("%s %s before the %s ACL: HTTP %d %s", st.method, st.path, st.op, r.Status, r.Body)
		}
		pt := auth.Literal
		if st.prefix {
			pt = auth.Prefix
		}
		addACL(t, admin, "alice", st.rt, st.pattern, pt, st.op)
		alice.expect(st.allowedStatus, st.method, st.path, st.body)
	}
	// The prefix ACL covers logs.* only; listing needs a wildcard ACL.
	alice.expect(403, "POST", "/v1/topics", map[string]any{"name": "metrics.x"})
	alice.expect(403, "GET", "/v1/topics", nil)
	addACL(t, admin, "alice", auth.Topic, "*", auth.Literal, auth.Describe, auth.Read)
	alice.expect(200, "GET", "/v1/topics", nil)
	alice.expect(403, "POST", "/v1/topics/other/records", produce) // write was not granted by "*"

	// The audit topic is admin-only even for a wildcard ACL; an admin reads
	// the admin actions and the denials in it.
	tu.Eventually(t, 20*time.Second, "audit events", func() bool {
		var created, denied bool
		for _, e := range auditEvents(t, admin) {
			if e.Action == "POST /v1/principals" && e.Result == "ok" && e.Principal == auth.BootstrapPrincipal && e.Source != "" {
				created = true
			}
			if e.Principal == "alice" && e.Result == "denied" && e.Resource == "topic:orders" && e.Status == 403 {
				denied = true
			}
		}
		return created && denied
	})
	alice.expect(403, "GET", "/v1/topics/__audit/partitions/0/records", nil)
	alice.expect(403, "POST", "/v1/topics/__audit/records", produce)

	// Revoking the token: 401 from then on.
	var list struct{ Principals []auth.PrincipalInfo }
	admin.expect(200, "GET", "/v1/principals", nil).JSON(t, &list)
	var id string
	for _, p := range list.Principals {
		if p.Name == "alice" && len(p.Tokens) == 1 {
			id = p.Tokens[0].ID
		}
	}
	if id == "" {
		t.Fatalf("principals: %+v", list)
	}
	admin.expect(204, "DELETE", "/v1/principals/alice/tokens/"+id, nil)
	alice.expect(401, "GET", "/v1/whoami", nil)

	// ACL removal takes the right away.
	bob := admin.with(createToken(t, admin, "bob"))
	aclID := addACL(t, admin, "bob", auth.Topic, "orders", auth.Literal, auth.Write)
	bob.expect(200, "POST", "/v1/topics/orders/records", produce)
	admin.expect(204, "DELETE", "/v1/acls/"+aclID, nil)
	bob.expect(403, "POST", "/v1/topics/orders/records", produce)
}

func TestSecurityOffListensOnLoopback(t *testing.T) {
	// Without auth a node never listens beyond 127.0.0.1 (unless told to).
	s := startNode(t, t.TempDir(), func(c *Config) { c.HTTPAddr = "0.0.0.0:0" })
	defer stop(t, s)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("listening on %s", s.Addr())
	}
	// Everything works without credentials, as before.
	tu.Do(t, "POST", s.URL()+"/v1/topics", map[string]any{"name": "t"})
	if r := tu.Do(t, "GET", s.URL()+"/v1/topics/t", nil); r.Status != 200 {
		t.Fatal(r.Status)
	}
}

func TestSecurityWebSocket(t *testing.T) {
	s := securedNode(t)
	defer stop(t, s)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	admin.expect(201, "POST", "/v1/topics", map[string]any{"name": "ws-t", "replication_factor": 1})
	tok := createToken(t, admin, "carol")

	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	// No token: 401 at the handshake.
	_, resp, err := d.Dial(wsURL(s.URL(), "/v1/ws"), nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v %v", err, resp)
	}
	// A cross-origin page is refused even with a token.
	_, resp, err = d.Dial(wsURL(s.URL(), "/v1/ws?token="+tok), http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("cross origin: %v %v", err, resp)
	}
	// The token in the query (browsers) or the header (programs).
	c := dialWS(t, s.URL(), "/v1/ws?token="+tok, nil)
	c2 := dialWS(t, s.URL(), "/v1/ws", http.Header{"Authorization": {"Bearer " + tok}})
	for i, conn := range []*wsClient{c, c2} {
		id := string(rune('a' + i))
		conn.send(map[string]any{"op": "produce", "id": "p" + id, "topic": "ws-t", "records": []map[string]any{{"value": "x"}}})
		m := conn.waitFor(func(m wsMsg) bool { return m.ID == "p"+id })
		if m.Op != "error" || !strings.Contains(m.raw, "forbidden") {
			t.Fatalf("produce without ACL: %s", m.raw)
		}
		conn.send(map[string]any{"op": "subscribe", "id": "s" + id, "topic": "ws-t"})
		m = conn.waitFor(func(m wsMsg) bool { return m.ID == "s"+id })
		if m.Op != "error" || !strings.Contains(m.raw, "forbidden") {
			t.Fatalf("subscribe without ACL: %s", m.raw)
		}
	}
	addACL(t, admin, "carol", auth.Topic, "ws-", auth.Prefix, auth.Read, auth.Write)
	c.send(map[string]any{"op": "produce", "id": "p2", "topic": "ws-t", "records": []map[string]any{{"value": "x"}}})
	if m := c.waitFor(func(m wsMsg) bool { return m.ID == "p2" }); m.Op != "produced" {
		t.Fatalf("produce with ACL: %s", m.raw)
	}
	c.send(map[string]any{"op": "subscribe", "id": "s2", "topic": "ws-t", "from": "earliest"})
	if m := c.waitFor(func(m wsMsg) bool { return m.ID == "s2" }); m.Op == "error" {
		t.Fatalf("subscribe with ACL: %s", m.raw)
	}
	// A group needs its own ACL.
	c.send(map[string]any{"op": "subscribe", "id": "s3", "topic": "ws-t", "group": "gx"})
	if m := c.waitFor(func(m wsMsg) bool { return m.ID == "s3" }); m.Op != "error" || !strings.Contains(m.raw, "forbidden") {
		t.Fatalf("group without ACL: %s", m.raw)
	}
	// The topic shortcut checks the same rights at the handshake.
	_, resp, err = d.Dial(wsURL(s.URL(), "/v1/topics/ws-t/ws?group=gx&token="+tok), nil)
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("topic ws with a group without ACL: %v %v", err, resp)
	}
}

func TestSecurityTLSAndMTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := devcerts.Write(dir, nil, []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	s := securedNode(t, func(c *Config) {
		c.Security.TLSCert, c.Security.TLSKey, c.Security.TLSClientCA = f("server.pem"), f("server-key.pem"), f("ca.pem")
	})
	defer stop(t, s)
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatal(s.URL())
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(f("ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	aliceCert, err := tls.LoadX509KeyPair(f("alice.pem"), f("alice-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// The client certificate maps to principal alice.
	c := newSecClient(t, s.URL(), "", &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{aliceCert}})
	var who map[string]any
	c.expect(200, "GET", "/v1/whoami", nil).JSON(t, &who)
	if who["principal"] != "alice" || who["via"] != "mtls" {
		t.Fatal(who)
	}
	c.expect(403, "POST", "/v1/topics", map[string]any{"name": "x"})
	// A token still wins over the certificate.
	c.with(testAdminToken).expect(201, "POST", "/v1/topics", map[string]any{"name": "x", "replication_factor": 1})
	// No client certificate: the handshake fails.
	if _, err := newSecClient(t, s.URL(), testAdminToken, &tls.Config{RootCAs: pool}).try("GET", "/v1/whoami", nil); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// TLS below 1.2 is refused.
	old := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{aliceCert}, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}
	if _, err := newSecClient(t, s.URL(), "", old).try("GET", "/v1/whoami", nil); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	// A certificate from another CA is refused.
	other, _ := devcerts.NewCA("other")
	op, _ := other.Issue("alice")
	ocert, _ := tls.X509KeyPair(op.CertPEM, op.KeyPEM)
	if _, err := newSecClient(t, s.URL(), "", &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{ocert}}).try("GET", "/v1/whoami", nil); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	// WSS with the client certificate.
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{aliceCert}}}
	conn, resp, err := d.Dial("wss://"+s.Addr()+"/v1/ws", nil)
	if err != nil {
		t.Fatalf("wss: %v %v", err, resp)
	}
	conn.WriteMessage(websocket.TextMessage, []byte(`{"op":"ping","id":"1"}`))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := conn.ReadMessage(); err != nil || !strings.Contains(string(msg), "pong") {
		t.Fatalf("wss ping: %s %v", msg, err)
	}
	conn.Close()
}

func TestSecurityJWT(t *testing.T) {
	dir := t.TempDir()
	secret := []byte(strings.Repeat("s", 48))
	sf := filepath.Join(dir, "hs")
	os.WriteFile(sf, secret, 0o600)
	s := securedNode(t, func(c *Config) {
		c.Security.JWT = auth.JWTConfig{HMACSecretFile: sf, Issuer: "idp", Audience: "weir"}
	})
	defer stop(t, s)
	c := newSecClient(t, s.URL(), "", nil)
	mk := func(alg string, claims map[string]any) string {
		enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
		return signHSForTest(secret, enc(map[string]any{"alg": alg})+"."+enc(claims), alg)
	}
	now := time.Now().Unix()
	good := mk("HS256", map[string]any{"sub": "dave", "iss": "idp", "aud": "weir", "exp": now + 60})
	var who map[string]any
	c.with(good).expect(200, "GET", "/v1/whoami", nil).JSON(t, &who)
	if who["principal"] != "dave" || who["via"] != "jwt" {
		t.Fatal(who)
	}
	for name, tok := range map[string]string{
		"expired": mk("HS256", map[string]any{"sub": "dave", "iss": "idp", "aud": "weir", "exp": now - 3600}),
		"none":    mk("none", map[string]any{"sub": "dave", "iss": "idp", "aud": "weir", "exp": now + 60}),
		"aud":     mk("HS256", map[string]any{"sub": "dave", "iss": "idp", "aud": "other", "exp": now + 60}),
		"badsig":  good[:len(good)-3] + "abc",
	} {
		if r := c.with(tok).do("GET", "/v1/whoami", nil); r.Status != 401 {
			t.Errorf("%s JWT: HTTP %d %s", name, r.Status, r.Body)
		}
	}
	// JWT principals get rights through ACLs like any other.
	admin := c.with(testAdminToken)
	admin.expect(201, "POST", "/v1/topics", map[string]any{"name": "j", "replication_factor": 1})
	c.with(good).expect(403, "GET", "/v1/topics/j", nil)
	addACL(t, admin, "dave", auth.Topic, "j", auth.Literal, auth.Describe)
	c.with(good).expect(200, "GET", "/v1/topics/j", nil)
}

func signHSForTest(secret []byte, signed, alg string) string {
	if alg == "none" {
		return signed + "."
	}
	m := hmacSHA256(secret, []byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(m)
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// waitFor returns the first frame received that satisfies pred.
func (c *wsClient) waitFor(pred func(wsMsg) bool) wsMsg {
	c.t.Helper()
	var got wsMsg
	c.wait(10*time.Second, "a frame", func(msgs []wsMsg) bool {
		for _, m := range msgs {
			if pred(m) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

func TestSecurityPipelineRunsWithCreatorRights(t *testing.T) {
	s := securedNode(t)
	defer stop(t, s)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	for _, tp := range []string{"pin", "pout", "psecret"} {
		admin.expect(201, "POST", "/v1/topics", map[string]any{"name": tp, "replication_factor": 1})
	}
	admin.expect(201, "PUT", "/v1/modules/pass", tu.BuildWasm(t, "examples/passthrough"))
	erin := admin.with(createToken(t, admin, "erin"))
	addACL(t, admin, "erin", auth.Pipeline, "p", auth.Prefix, auth.Create, auth.Delete)
	addACL(t, admin, "erin", auth.Module, "pass", auth.Literal, auth.Read)
	addACL(t, admin, "erin", auth.Topic, "pin", auth.Literal, auth.Read)
	writeOut := addACL(t, admin, "erin", auth.Topic, "pout", auth.Literal, auth.Write)
	addACL(t, admin, "erin", auth.Topic, "p1.dlq", auth.Literal, auth.Write)

	// At creation: a pipeline may not write where its creator may not.
	erin.expect(403, "POST", "/v1/pipelines", map[string]any{"name": "p0", "module": "pass", "inputs": []string{"pin"}, "outputs": []string{"psecret"}})
	erin.expect(201, "POST", "/v1/pipelines", map[string]any{"name": "p1", "module": "pass", "inputs": []string{"pin"}, "outputs": []string{"pout"}})
	count := func() int {
		var f struct{ Records []json.RawMessage }
		admin.expect(200, "GET", "/v1/topics/pout/partitions/0/records?max_records=1000", nil).JSON(t, &f)
		return len(f.Records)
	}
	produce := map[string]any{"records": []map[string]any{{"value": "v"}}}
	admin.expect(200, "POST", "/v1/topics/pin/records", produce)
	tu.Eventually(t, 60*time.Second, "the pipeline's output", func() bool { return count() == 1 })

	// While running: once its creator loses the right, its batches fail.
	admin.expect(204, "DELETE", "/v1/acls/"+writeOut, nil)
	admin.expect(200, "POST", "/v1/topics/pin/records", produce)
	// Fence: the pipeline's worker looked at its next batch and refused
	// it for the missing right (its status says so); only then is
	// "nothing more in pout" a result.
	denied := func() bool {
		var st struct {
			Partitions []struct {
				LastError string `json:"last_error"`
			} `json:"partitions"`
		}
		admin.expect(200, "GET", "/v1/pipelines/p1", nil).JSON(t, &st)
		for _, p := range st.Partitions {
			if strings.Contains(p.LastError, `may not write topic "pout"`) {
				return true
			}
		}
		return false
	}
	tu.Eventually(t, 60*time.Second, "p1's status naming the refused write on pout", denied)
	if n := count(); n != 1 {
		t.Fatalf("the pipeline wrote %d records after its creator lost write on its output", n)
	}
	addACL(t, admin, "erin", auth.Topic, "pout", auth.Literal, auth.Write)
	tu.Eventually(t, 60*time.Second, "the pipeline resumes", func() bool { return count() == 2 })
}

// A secured cluster: HTTPS between nodes with the cluster secret, Raft over
// mutual TLS. A node whose Raft certificate another CA signed is admitted
// to the metadata but never receives replication traffic; a node without
// the cluster secret is refused.
func TestSecurityClusterRaftMTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := devcerts.Write(dir, nil, nil); err != nil {
		t.Fatal(err)
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	other, _ := devcerts.NewCA("rogue CA")
	rogue, _ := other.Issue("weir-node", "127.0.0.1")
	rc, rk, err := devcerts.WritePair(dir, "rogue", rogue)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "cluster-secret-0123456789"
	c := startCluster(t, 1, func(cfg *Config) {
		cfg.Security = SecurityConfig{Auth: true, AdminToken: testAdminToken, ClusterSecret: secret,
			TLSCert: f("server.pem"), TLSKey: f("server-key.pem"),
			RaftTLSCA: f("ca.pem"), RaftTLSCert: f("server.pem"), RaftTLSKey: f("server-key.pem")}
		switch cfg.NodeID {
		case 3:
			cfg.Security.RaftTLSCert, cfg.Security.RaftTLSKey = rc, rk
		case 4:
			cfg.Security.ClusterSecret = "wrong-secret-0123456789"
		}
	})
	n2 := c.join(2, 1)
	tu.Eventually(t, 60*time.Second, "node 2 ready", func() bool { return n2.Host.Ready() && n2.Host.NodeCount() == 2 })

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(f("ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	a1 := newSecClient(t, c.nodes[1].URL(), testAdminToken, &tls.Config{RootCAs: pool})
	a2 := newSecClient(t, n2.URL(), testAdminToken, &tls.Config{RootCAs: pool})
	a1.expect(201, "POST", "/v1/topics", map[string]any{"name": "sec", "partitions": 2, "replication_factor": 1})
	// Each node serves both partitions: one of them forwards over HTTPS
	// with the cluster secret.
	for _, a := range []*secClient{a1, a2} {
		for p := 0; p < 2; p++ {
			tu.Eventually(t, 30*time.Second, "produce", func() bool {
				r := a.do("POST", "/v1/topics/sec/records", map[string]any{"records": []map[string]any{{"value": "v", "partition": p}}})
				return r.Status == 200
			})
		}
	}
	// Internal endpoints refuse clients, even admins.
	a2.expect(403, "GET", "/v1/internal/node", nil)

	// The rogue Raft certificate: admitted over HTTP, but Raft refuses it.
	c.dirs[3], c.peers[3] = t.TempDir(), tu.FreeAddr(t)
	n3 := c.start(3, c.nodes[1].Addr())
	if n3 == nil {
		t.FailNow()
	}
	defer stop(t, n3)
	// Fence: the leader tried to reach node 3 over Raft several times and
	// failed each time (its TLS handshake refuses the rogue certificate);
	// only then does "node 3 has not caught up" say something.
	failedBefore := c.nodes[1].Host.RaftConnectionFailures()
	tu.Eventually(t, 60*time.Second, "node 1's Raft connections to node 3 failing", func() bool {
		return c.nodes[1].Host.RaftConnectionFailures() >= failedBefore+3
	})
	if n3.Host.Ready() {
		t.Fatal("a node with a Raft certificate of another CA caught up with the cluster")
	}
	// The wrong cluster secret: the join is refused at once.
	c.dirs[4], c.peers[4] = t.TempDir(), tu.FreeAddr(t)
	cfg := Config{NodeID: 4, DataDir: c.dirs[4], HTTPAddr: "127.0.0.1:0", RaftAddr: c.peers[4], Join: c.nodes[1].Addr()}
	c.mod(&cfg)
	if s, err := Start(cfg); err == nil {
		stop(t, s)
		t.Fatal("a node with the wrong cluster secret joined")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Fatalf("join with the wrong secret: %v", err)
	}
}
