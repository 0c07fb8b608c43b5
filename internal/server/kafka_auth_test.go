package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/internal/devcerts"
)

// oauthBearer is kgo's SASL/OAUTHBEARER mechanism with a fixed token.
func oauthBearer(tok string) kgo.Opt {
	return kgo.SASL(oauth.Oauth(func(context.Context) (oauth.Auth, error) { return oauth.Auth{Token: tok}, nil }))
}

// waitAudit polls __audit (as admin, over HTTP) until an event matches.
func waitAudit(t *testing.T, admin *secClient, what string, match func(auth.Event) bool) auth.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, e := range auditEvents(t, admin) {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record for %s in __audit: %+v", what, auditEvents(t, admin))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// produceEventually retries a produce that an ACL change is about to allow
// (the client caches the failed topic's metadata for a moment).
func produceEventually(t *testing.T, ctx context.Context, cl *kgo.Client, r *kgo.Record) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cl.ProduceSync(ctx, r).FirstErr()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce to %s: %v", r.Topic, err)
		}
		cl.ForceMetadataRefresh()
	}
}

// The Kafka port serves TLS with --tls-cert/--tls-key; with
// --tls-client-ca a verified client certificate authenticates the
// principal of its CN (no SASL needed), SASL over TLS still works and
// wins over the certificate, and a client without a certificate, or
// speaking plaintext, is not served.
func TestKafkaTLSAndMTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := devcerts.Write(dir, nil, []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	s := securedNode(t, func(c *Config) {
		c.KafkaAddr = "127.0.0.1:0"
		c.Security.TLSCert, c.Security.TLSKey, c.Security.TLSClientCA = f("server.pem"), f("server-key.pem"), f("ca.pem")
	})
	t.Cleanup(func() { stop(t, s) })
	ctx := kctx(t)
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(f("ca.pem"))
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("ca.pem: %v", err)
	}
	aliceCert, err := tls.LoadX509KeyPair(f("alice.pem"), f("alice-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	withCert := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{aliceCert}}
	admin := newSecClient(t, s.URL(), testAdminToken, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{aliceCert}})

	// SASL_SSL: the admin token over TLS (it wins over alice's certificate).
	adminKafka := kadm.NewClient(kafkaClient(t, s, kgo.DialTLSConfig(withCert.Clone()),
		kgo.SASL(plain.Auth{User: "admin", Pass: testAdminToken}.AsMechanism())))
	if cr, err := adminKafka.CreateTopic(ctx, 1, -1, nil, "tls-t"); err != nil || cr.Err != nil {
		t.Fatalf("admin create over SASL_SSL: %v %v", err, cr.Err)
	}

	// SSL with a client certificate and no SASL: the principal is alice.
	alice := kafkaClient(t, s, kgo.DialTLSConfig(withCert.Clone()), kgo.DefaultProduceTopic("tls-t"))
	if err := alice.Ping(ctx); err != nil {
		t.Fatalf("mTLS ping: %v", err)
	}
	if err := alice.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice's produce over mTLS without an ACL: %v", err)
	}
	e := waitAudit(t, admin, "alice's denial over mTLS", func(e auth.Event) bool {
		return strings.HasPrefix(e.Action, "kafka ") && e.Principal == "alice" && e.Result == "denied"
	})
	if e.Via != "mtls" || e.Resource != "topic:tls-t" {
		t.Fatalf("audit of alice's denial: %+v, want via mtls on topic:tls-t", e)
	}
	addACL(t, admin, "alice", auth.Topic, "tls-t", auth.Literal, auth.Write, auth.Read, auth.Describe)
	produceEventually(t, ctx, alice, &kgo.Record{Topic: "tls-t", Key: []byte("k"), Value: []byte("over tls")})

	// Read it back over mTLS.
	cons := kafkaClient(t, s, kgo.DialTLSConfig(withCert.Clone()), kgo.ConsumeTopics("tls-t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for got := false; !got; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no record fetched over mTLS before the deadline")
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d over mTLS: %v", tp, p, err) })
		for _, r := range fs.Records() {
			if string(r.Value) != "over tls" || string(r.Key) != "k" {
				t.Fatalf("fetched %q=%q", r.Key, r.Value)
			}
			got = true
		}
	}

	// Refused: TLS without a client certificate, a certificate of another
	// CA, and plaintext on the TLS port.
	short := func(opts ...kgo.Opt) error {
		cl := kafkaClient(t, s, append(opts, kgo.RetryTimeout(2*time.Second), kgo.RequestRetries(1))...)
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return cl.Ping(c)
	}
	if err := short(kgo.DialTLSConfig(&tls.Config{RootCAs: pool}), kgo.SASL(plain.Auth{User: "admin", Pass: testAdminToken}.AsMechanism())); err == nil {
		t.Fatal("a TLS client without a certificate was served")
	}
	other, _ := devcerts.NewCA("other")
	op, _ := other.Issue("alice")
	ocert, _ := tls.X509KeyPair(op.CertPEM, op.KeyPEM)
	if err := short(kgo.DialTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{ocert}})); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	if err := short(); err == nil {
		t.Fatal("a plaintext client was served on the TLS port")
	}
}

// SASL/OAUTHBEARER with signed JWTs: a valid one authenticates its sub,
// an expired or forged one fails with SASL_AUTHENTICATION_FAILED (audited),
// and sub "admin" is an admin only once a principal "admin" is stored as
// admin — the HTTP API's rule.
func TestKafkaOAuthBearerJWT(t *testing.T) {
	dir := t.TempDir()
	secret := []byte(strings.Repeat("k", 48))
	sf := filepath.Join(dir, "hs")
	if err := os.WriteFile(sf, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	s := securedNode(t, func(c *Config) {
		c.KafkaAddr = "127.0.0.1:0"
		c.Security.JWT = auth.JWTConfig{HMACSecretFile: sf, Issuer: "idp", Audience: "weir"}
	})
	t.Cleanup(func() { stop(t, s) })
	ctx := kctx(t)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	mk := func(sub string, exp time.Duration) string {
		claims := map[string]any{"sub": sub, "iss": "idp", "aud": "weir", "exp": time.Now().Add(exp).Unix()}
		return signHSForTest(secret, enc(map[string]any{"alg": "HS256", "typ": "JWT"})+"."+enc(claims), "HS256")
	}
	admin.expect(201, "POST", "/v1/topics", map[string]any{"name": "jt", "replication_factor": 1})

	// A valid JWT: principal dave, who gets rights through ACLs.
	dave := kafkaClient(t, s, oauthBearer(mk("dave", time.Hour)), kgo.DefaultProduceTopic("jt"))
	if err := dave.Ping(ctx); err != nil {
		t.Fatalf("valid JWT: %v", err)
	}
	if err := dave.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("dave's produce without an ACL: %v", err)
	}
	if e := waitAudit(t, admin, "dave's denial", func(e auth.Event) bool {
		return e.Principal == "dave" && e.Result == "denied"
	}); e.Via != "jwt" {
		t.Fatalf("dave's denial audited as %+v, want via jwt", e)
	}
	addACL(t, admin, "dave", auth.Topic, "jt", auth.Literal, auth.Write, auth.Describe)
	produceEventually(t, ctx, dave, &kgo.Record{Topic: "jt", Value: []byte("by jwt")})

	// Expired, forged (bad signature, wrong key, alg none): refused.
	good := mk("dave", time.Hour)
	forgedKey := signHSForTest([]byte(strings.Repeat("x", 48)), strings.Join(strings.Split(good, ".")[:2], "."), "HS256")
	for name, tok := range map[string]string{
		"expired":  mk("dave", -time.Hour),
		"badsig":   good[:len(good)-4] + "AAAA",
		"wrongkey": forgedKey,
		"none":     signHSForTest(nil, enc(map[string]any{"alg": "none"})+"."+enc(map[string]any{"sub": "admin", "iss": "idp", "aud": "weir", "exp": time.Now().Add(time.Hour).Unix()}), "none"),
	} {
		cl := kafkaClient(t, s, oauthBearer(tok))
		if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s JWT over OAUTHBEARER: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}
	waitAudit(t, admin, "a failed SaslAuthenticate", func(e auth.Event) bool {
		return e.Action == "kafka SaslAuthenticate" && e.Result == "unauthenticated"
	})

	// sub "admin" is not the bootstrap admin by name.
	jwtAdmin := mk("admin", time.Hour)
	notYet := kadm.NewClient(kafkaClient(t, s, oauthBearer(jwtAdmin)))
	cr, err := notYet.CreateTopic(ctx, 1, -1, nil, "by-jwt-admin")
	if err == nil {
		err = cr.Err
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("JWT sub admin without an admin principal created a topic: %v", err)
	}
	admin.expect(201, "POST", "/v1/principals", map[string]any{"name": "admin", "admin": true})
	// Fence: the HTTP API sees the JWT as admin before a new Kafka
	// connection is made (the Kafka listener resolves the principal when
	// the connection authenticates).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var who map[string]any
		admin.with(jwtAdmin).expect(200, "GET", "/v1/whoami", nil).JSON(t, &who)
		if who["admin"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("JWT sub admin never became admin over HTTP: %v", who)
		}
		time.Sleep(20 * time.Millisecond)
	}
	nowAdmin := kadm.NewClient(kafkaClient(t, s, oauthBearer(jwtAdmin)))
	if cr, err := nowAdmin.CreateTopic(ctx, 1, -1, nil, "by-jwt-admin"); err != nil || cr.Err != nil {
		t.Fatalf("JWT sub admin with an admin principal: %v %v", err, cr.Err)
	}
}

// An ACL denial over Kafka answers TOPIC_AUTHORIZATION_FAILED for the
// request itself (here Produce and Fetch with describe but no write or
// read, so Metadata passes) and writes an audit record to __audit.
func TestKafkaACLDenialAudited(t *testing.T) {
	s := securedNode(t, func(c *Config) { c.KafkaAddr = "127.0.0.1:0" })
	t.Cleanup(func() { stop(t, s) })
	ctx := kctx(t)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	admin.expect(201, "POST", "/v1/topics", map[string]any{"name": "den", "replication_factor": 1})
	tok := createToken(t, admin, "alice")
	addACL(t, admin, "alice", auth.Topic, "den", auth.Literal, auth.Describe)
	sasl := kgo.SASL(plain.Auth{User: "ignored", Pass: tok}.AsMechanism())

	alice := kafkaClient(t, s, sasl, kgo.DefaultProduceTopic("den"))
	if err := alice.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce without write: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	e := waitAudit(t, admin, "the Produce denial", func(e auth.Event) bool {
		return e.Action == "kafka Produce" && e.Result == "denied"
	})
	if e.Principal != "alice" || e.Via != "token" || e.Resource != "topic:den" || e.Operation != string(auth.Write) || !strings.HasPrefix(e.Source, "127.0.0.1") {
		t.Fatalf("Produce denial audited as %+v", e)
	}

	// Fetch without read.
	cons := kafkaClient(t, s, sasl, kgo.ConsumeTopics("den"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var ferr error
	for ferr == nil {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no fetch error before the deadline")
		}
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if len(fs.Records()) > 0 {
			t.Fatal("records fetched without read")
		}
	}
	if !errors.Is(ferr, kerr.TopicAuthorizationFailed) {
		t.Fatalf("fetch without read: %v, want TOPIC_AUTHORIZATION_FAILED", ferr)
	}
	waitAudit(t, admin, "the Fetch denial", func(e auth.Event) bool {
		return e.Action == "kafka Fetch" && e.Result == "denied" && e.Principal == "alice" && e.Operation == string(auth.Read)
	})

	// Nothing was appended by the denied produce.
	var recs struct {
		Records []json.RawMessage `json:"records"`
	}
	admin.expect(200, "GET", "/v1/topics/den/partitions/0/records", nil).JSON(t, &recs)
	if len(recs.Records) != 0 {
		t.Fatalf("denied produce appended %d records", len(recs.Records))
	}

	// Allowed admin actions over Kafka are audited with their outcome, as
	// the HTTP API's audited rows are.
	addACL(t, admin, "alice", auth.Topic, "made", auth.Literal, auth.Create, auth.Alter, auth.Delete)
	adm := kadm.NewClient(kafkaClient(t, s, sasl))
	if cr, err := adm.CreateTopic(ctx, 1, 1, nil, "made"); err != nil || cr.Err != nil {
		t.Fatalf("create over Kafka: %v %v", err, cr.Err)
	}
	if r, err := adm.UpdatePartitions(ctx, 1, "made"); err != nil || r["made"].Err != kerr.InvalidPartitions {
		t.Fatalf("growth to the same count: %v %+v", err, r)
	}
	if r, err := adm.DeleteTopics(ctx, "made"); err != nil || r["made"].Err != nil {
		t.Fatalf("delete over Kafka: %v %+v", err, r)
	}
	for _, c := range []struct{ action, op, result, reason string }{
		{"kafka CreateTopics", "create", "ok", ""},
		{"kafka CreatePartitions", "alter", "error", "INVALID_PARTITIONS"},
		{"kafka DeleteTopics", "delete", "ok", ""},
	} {
		waitAudit(t, admin, c.action+" "+c.result, func(e auth.Event) bool {
			return e.Action == c.action && e.Result == c.result && e.Principal == "alice" && e.Resource == "topic:made" &&
				e.Operation == c.op && strings.Contains(e.Reason, c.reason)
		})
	}
}
