package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/weir-broker/weir/core/auth"
)

// With --auth the Kafka port needs SASL (PLAIN: the password is a Weir
// token; OAUTHBEARER: a JWT or token) and applies the HTTP API's ACLs.
func TestKafkaSASLAndACLs(t *testing.T) {
	s := securedNode(t, func(c *Config) { c.KafkaAddr = "127.0.0.1:0" })
	t.Cleanup(func() { stop(t, s) })
	ctx := kctx(t)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	aliceTok := createToken(t, admin, "alice")

	adminKafka := kadm.NewClient(kafkaClient(t, s, kgo.SASL(plain.Auth{User: "admin", Pass: testAdminToken}.AsMechanism())))
	if cr, err := adminKafka.CreateTopic(ctx, 1, -1, nil, "sec"); err != nil || cr.Err != nil {
		t.Fatalf("admin create over SASL/PLAIN: %v %v", err, cr.Err)
	}

	// Without SASL: the connection is closed before any other request.
	anon := kafkaClient(t, s, kgo.DefaultProduceTopic("sec"), kgo.RecordDeliveryTimeout(3*time.Second), kgo.RetryTimeout(3*time.Second))
	if err := anon.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err == nil {
		t.Fatal("an unauthenticated produce succeeded")
	}
	// A wrong password: SASL_AUTHENTICATION_FAILED.
	wrong := kafkaClient(t, s, kgo.SASL(plain.Auth{User: "alice", Pass: "weir_wrong"}.AsMechanism()))
	if err := wrong.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("wrong password: %v", err)
	}

	// alice (OAUTHBEARER with her token): denied until an ACL allows.
	alice := kafkaClient(t, s, kgo.DefaultProduceTopic("sec"), kgo.SASL(oauth.Oauth(func(context.Context) (oauth.Auth, error) {
		return oauth.Auth{Token: aliceTok}, nil
	})))
	if err := alice.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce without an ACL: %v", err)
	}
	admin.expect(201, "POST", "/v1/acls", auth.ACL{Principal: "alice", ResourceType: auth.Topic, Pattern: "sec", Operations: []auth.Operation{auth.Write, auth.Describe}})
	// The client caches the failed topic for a moment; retry until it passes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := alice.ProduceSync(ctx, &kgo.Record{Value: []byte("y")}).FirstErr()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce with an ACL: %v", err)
		}
		alice.ForceMetadataRefresh()
	}
	// Topic create needs topic create, as over HTTP.
	cr, err := kadm.NewClient(alice).CreateTopic(ctx, 1, -1, nil, "other")
	if err == nil {
		err = cr.Err
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice's create without an ACL: %v", err)
	}
}
