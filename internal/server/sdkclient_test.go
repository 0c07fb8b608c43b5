package server

// The Go client (sdk/client) against real nodes: every call it offers
// (quotas aside: they are tested where /v1/quotas is served).

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/devcerts"
	tu "github.com/weir-broker/weir/internal/testutil"
	"github.com/weir-broker/weir/sdk/client"
)

func sdkClient(t testing.TB, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, append([]client.Option{client.WithBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sdkNode starts a node for the test (stopped when it ends) and returns a
// client of it with the test's context.
func sdkNode(t *testing.T, mod ...func(*Config)) (*client.Client, context.Context) {
	t.Helper()
	s := startNode(t, t.TempDir(), mod...)
	t.Cleanup(func() { stop(t, s) })
	return sdkClient(t, s.URL()), testCtx(t)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// must(f())(t) is f's value, failing t on f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func recs(values ...string) []client.Record {
	out := make([]client.Record, len(values))
	for i, v := range values {
		out[i] = client.Record{Value: []byte(v)}
	}
	return out
}

// fetchValues reads a whole partition's values.
func fetchValues(t testing.TB, c *client.Client, topic string, p int) []string {
	t.Helper()
	f := must(c.Fetch(testCtx(t), topic, p, client.FetchOptions{MaxRecords: 10000}))(t)
	var out []string
	for _, r := range f.Records {
		out = append(out, string(r.Value))
	}
	return out
}

// TestClientAdminTLS: TLS with a private CA, a bearer token, topics,
// principals, tokens, ACLs and a WebSocket over wss.
func TestClientAdminTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := devcerts.Write(dir, nil, nil); err != nil {
		t.Fatal(err)
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	s := securedNode(t, func(c *Config) { c.Security.TLSCert, c.Security.TLSKey = f("server.pem"), f("server-key.pem") })
	defer stop(t, s)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(must(os.ReadFile(f("ca.pem")))(t))
	tc := &tls.Config{RootCAs: pool}
	ctx := testCtx(t)
	admin := sdkClient(t, s.URL(), client.WithTLSConfig(tc), client.WithToken(testAdminToken))

	if _, err := sdkClient(t, s.URL(), client.WithTLSConfig(tc)).Topics(ctx); !errors.Is(err, client.CodeUnauthenticated) {
		t.Fatalf("no token: %v", err)
	}
	if id := must(admin.WhoAmI(ctx))(t); id.Principal != "admin" || !id.Admin || !id.Auth {
		t.Fatalf("whoami %+v", id)
	}
	tp := must(admin.CreateTopic(ctx, client.TopicConfig{Name: "orders", Partitions: 2, ReplicationFactor: 1}))(t)
	if tp.Name != "orders" || len(tp.Partitions) != 2 {
		t.Fatalf("created %+v", tp)
	}
	if _, err := admin.CreateTopic(ctx, client.TopicConfig{Name: "orders"}); !errors.Is(err, client.CodeTopicExists) {
		t.Fatalf("second create: %v", err)
	}
	listed := map[string]int{}
	for _, tp := range must(admin.Topics(ctx))(t) {
		listed[tp.Name] = tp.Partitions
	}
	if listed["orders"] != 2 {
		t.Fatalf("topics %+v", listed)
	}

	checkPrincipalsACLs(t, ctx, admin, client.WithTLSConfig(tc))
	conn := must(admin.Dial(ctx))(t)
	noErr(t, conn.Ping(ctx))
	noErr(t, conn.Close())
	noErr(t, admin.DeleteTopic(ctx, "orders"))
	if _, err := admin.Topic(ctx, "orders"); !errors.Is(err, client.CodeTopicNotFound) {
		t.Fatalf("deleted topic: %v", err)
	}
}

// checkPrincipalsACLs: tokens, principals and ACLs, seen from a principal
// the admin makes.
func checkPrincipalsACLs(t *testing.T, ctx context.Context, admin *client.Client, tlsOpt client.Option) {
	tok := must(admin.CreateToken(ctx, "alice", false))(t)
	alice := sdkClient(t, admin.Addr(), tlsOpt, client.WithToken(tok.Token))
	if _, err := alice.Produce(ctx, "orders", recs("x")); !errors.Is(err, client.CodeForbidden) {
		t.Fatalf("alice without ACL: %v", err)
	}
	acl := must(admin.AddACL(ctx, client.ACL{Principal: "alice", ResourceType: "topic", Pattern: "ord", PatternType: "prefix", Operations: []string{"write", "describe"}}))(t)
	if acls := must(admin.ACLs(ctx, "alice"))(t); len(acls) != 1 || acls[0].ID != acl.ID {
		t.Fatalf("acls %+v", acls)
	}
	if res := must(alice.Produce(ctx, "orders", []client.Record{{Value: []byte("x"), Partition: client.Part(1)}}))(t); res.Offsets[0] != (client.RecordOffset{Partition: 1, Offset: 0}) {
		t.Fatalf("alice produced %+v", res)
	}
	second := must(admin.AddToken(ctx, "alice"))(t)
	ps := must(admin.Principals(ctx))(t)
	tokens := map[string]int{}
	for _, p := range ps {
		tokens[p.Name] = len(p.Tokens)
	}
	if tokens["alice"] != 2 {
		t.Fatalf("principals %+v", ps)
	}
	noErr(t, admin.RevokeToken(ctx, "alice", second.TokenID))
	noErr(t, admin.RemoveACL(ctx, acl.ID))
	if _, err := alice.Topic(ctx, "orders"); !errors.Is(err, client.CodeForbidden) {
		t.Fatalf("alice after the ACL went: %v", err)
	}
	noErr(t, admin.DeletePrincipal(ctx, "alice"))
	if _, err := alice.Topics(ctx); !errors.Is(err, client.CodeUnauthenticated) {
		t.Fatalf("deleted alice: %v", err)
	}
}

// TestClientProduceFetch: produce and fetch in both encodings, keys and
// binary values kept exactly, long-poll, out of range, acks=none and an
// idempotent producer's retry.
func TestClientProduceFetch(t *testing.T) {
	bin, ctx := sdkNode(t)
	js := sdkClient(t, bin.Addr(), client.WithJSON())
	must(bin.CreateTopic(ctx, client.TopicConfig{Name: "t", Partitions: 3}))(t)

	raw := []byte{0, 0xff, '"', '\\', 0x80}
	for _, c := range []*client.Client{bin, js} {
		in := []client.Record{
			{Key: []byte("k"), Value: raw, Headers: map[string]string{"h": "v"}, Partition: client.Part(2), Timestamp: time.UnixMilli(1700000000000)},
			{Key: []byte{}, Value: []byte{}, Partition: client.Part(2)},
			{Value: []byte("later"), Partition: client.Part(2), DeliverAt: time.UnixMilli(4102444800000)},
		}
		res := must(c.Produce(ctx, "t", in))(t)
		base := res.Offsets[0].Offset
		if ps := res.Partitions(); len(ps) != 1 || ps[0].Partition != 2 || fmt.Sprint(ps[0].Records) != "[0 1 2]" {
			t.Fatalf("partitions %+v", ps)
		}
		for _, rc := range []*client.Client{bin, js} {
			f := must(rc.Fetch(ctx, "t", 2, client.FetchOptions{Offset: base, MaxRecords: 3}))(t)
			r := f.Records
			if len(r) != 3 || !bytes.Equal(r[0].Value, raw) || string(r[0].Key) != "k" || r[0].Headers["h"] != "v" ||
				r[0].Timestamp.UnixMilli() != 1700000000000 || r[1].Key == nil || len(r[1].Key) != 0 ||
				r[2].Headers[client.DeliverAtHeader] != "4102444800000" || f.NextOffset != base+3 {
				t.Fatalf("fetched %+v", f)
			}
		}
	}
	// Long-poll: a fetch at the end answers when a record arrives.
	got := make(chan *client.FetchResult, 1)
	go func() {
		f, err := bin.Fetch(ctx, "t", 0, client.FetchOptions{From: client.Latest, Wait: 30 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- f
	}()
	tu.Eventually(t, 30*time.Second, "the long-poll's record", func() bool {
		must(bin.Produce(ctx, "t", []client.Record{{Value: []byte("wake"), Partition: client.Part(0)}}))(t)
		select {
		case f := <-got:
			if f == nil || len(f.Records) == 0 || string(f.Records[0].Value) != "wake" {
				t.Fatalf("long-poll got %+v", f)
			}
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	_, err := bin.Fetch(ctx, "t", 1, client.FetchOptions{Offset: 99})
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeOffsetOutOfRange || e.HighWatermark != 0 || e.Status != 416 {
		t.Fatalf("out of range: %v", err)
	}
	if n := must(bin.ProduceNoAck(ctx, "t", []client.Record{{Value: []byte("na"), Partition: client.Part(1)}}))(t); n != 1 {
		t.Fatalf("accepted %d", n)
	}
	tu.Eventually(t, 10*time.Second, "the acks=none record", func() bool { return len(fetchValues(t, bin, "t", 1)) == 1 })

	checkIdempotentProducer(t, ctx, bin, js)
}

// checkIdempotentProducer: a resend of an idempotent producer's batch (a
// retry after a lost answer) is stored once and answered with the
// original offsets; a gap is refused with the expected sequence.
func checkIdempotentProducer(t *testing.T, ctx context.Context, bin, js *client.Client) {
	p := bin.Producer("t", 1, "p-1", 0)
	first := must(p.Produce(ctx, recs("a", "b")))(t)
	again := must(js.Producer("t", 1, "p-1", 0).Produce(ctx, recs("a", "b")))(t)
	if !again.Duplicate || again.Offsets[0] != first.Offsets[0] || p.Sequence() != 2 {
		t.Fatalf("first %+v, again %+v, sequence %d", first, again, p.Sequence())
	}
	must(p.Produce(ctx, recs("c")))(t)
	if v := fetchValues(t, bin, "t", 1); fmt.Sprint(v) != "[na a b c]" {
		t.Fatalf("partition 1: %v", v)
	}
	_, err := bin.Producer("t", 1, "p-1", 7).Produce(ctx, recs("gap"))
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeOutOfOrderSequence || e.ExpectedSequence != 3 {
		t.Fatalf("a gap: %v", err)
	}
}

// TestClientGroups: an HTTP member's join, poll, commit, heartbeat and
// leave; committed offsets, listing and describing groups.
func TestClientGroups(t *testing.T) {
	c, ctx := sdkNode(t)
	must(c.CreateTopic(ctx, client.TopicConfig{Name: "g", Partitions: 2}))(t)
	must(c.Produce(ctx, "g", []client.Record{{Value: []byte("p0"), Partition: client.Part(0)}, {Value: []byte("p1"), Partition: client.Part(1)}}))(t)

	m := must(c.JoinGroup(ctx, "billing", client.JoinOptions{Topics: []string{"g"}, ClientID: "b1", From: client.Earliest}))(t)
	if ms := m.Membership(); ms.Generation < 1 || len(ms.Assignment) != 1 || len(ms.Assignment[0].Partitions) != 2 {
		t.Fatalf("membership %+v", ms)
	}
	var got []string
	tu.Eventually(t, 20*time.Second, "both records", func() bool {
		for _, r := range must(m.Poll(ctx, client.PollOptions{Wait: time.Second, Commit: true}))(t) {
			got = append(got, string(r.Value))
		}
		return len(got) == 2
	})
	sort.Strings(got)
	if fmt.Sprint(got) != "[p0 p1]" {
		t.Fatalf("polled %v", got)
	}
	noErr(t, m.Commit(ctx, nil))
	offs := must(c.GroupOffsets(ctx, "billing", "g"))(t)
	if len(offs) != 2 || offs[0].Offset != 1 || offs[1].Offset != 1 {
		t.Fatalf("offsets %+v", offs)
	}
	if hb := must(m.Heartbeat(ctx))(t); hb.MemberID != m.Membership().MemberID {
		t.Fatalf("heartbeat %+v", hb)
	}
	if gs := must(c.Groups(ctx))(t); len(gs) != 1 || gs[0].Name != "billing" || gs[0].Members != 1 {
		t.Fatalf("groups %+v", gs)
	}
	d := must(c.Group(ctx, "billing"))(t)
	if d.State != "stable" || len(d.Members) != 1 || d.Members[0].Kind != "http" || len(d.Raw) == 0 {
		t.Fatalf("describe %+v", d)
	}
	stale := m.Membership()
	noErr(t, m.Leave(ctx))
	if err := m.Commit(ctx, []client.GroupOffset{{Topic: "g", Partition: 0, Offset: 1}}); !errors.Is(err, client.CodeUnknownMember) && !errors.Is(err, client.CodeStaleGeneration) {
		t.Fatalf("commit after leave (generation %d): %v", stale.Generation, err)
	}
	noErr(t, c.CommitOffsets(ctx, "other", []client.GroupOffset{{Topic: "g", Partition: 1, Offset: 1}}))
	if o := must(c.GroupOffsets(ctx, "other", ""))(t); len(o) != 1 || o[0].Offset != 1 || o[0].Lag != 0 {
		t.Fatalf("other's offsets %+v", o)
	}
}

// TestClientQueues: a subscription's create, list, describe, receive,
// ack, nack, extend, dead letters, redrive and delete.
func TestClientQueues(t *testing.T) {
	c, ctx := sdkNode(t, fastQueues)
	must(c.CreateTopic(ctx, client.TopicConfig{Name: "jobs"}))(t)
	sub := must(c.CreateSubscription(ctx, "jobs", client.SubscriptionConfig{Name: "w", MaxAttempts: client.Part(1), DeadLetterTopic: "jobs-dlq",
		Backoff: &client.Backoff{InitialMs: 0, MaxMs: 0, Multiplier: 1}}))(t)
	if sub.Name != "w" || sub.DeadLetterTopic != "jobs-dlq" {
		t.Fatalf("created %+v", sub)
	}
	if subs := must(c.Subscriptions(ctx, "jobs"))(t); len(subs) != 1 {
		t.Fatalf("list %+v", subs)
	}
	must(c.Produce(ctx, "jobs", recs("one", "two")))(t)
	var msgs []client.Message
	tu.Eventually(t, 20*time.Second, "two messages", func() bool {
		msgs = append(msgs, must(c.Receive(ctx, "jobs", "w", client.ReceiveOptions{MaxRecords: 2, Wait: time.Second}))(t)...)
		return len(msgs) >= 2
	})
	if string(msgs[0].Value) != "one" || msgs[0].Attempt != 1 || msgs[0].Receipt == "" {
		t.Fatalf("messages %+v", msgs)
	}
	ext := must(c.Extend(ctx, "jobs", "w", time.Minute, msgs[0].Receipt))(t)
	if ext[0].Err() != nil || ext[0].LeaseExpiresAtMs <= msgs[0].LeaseExpiresAt.UnixMilli() {
		t.Fatalf("extend %+v", ext)
	}
	if r := must(c.Ack(ctx, "jobs", "w", msgs[0].Receipt, "bogus"))(t); r[0].Err() != nil || !errors.Is(r[1].Err(), client.CodeInvalidReceipt) {
		t.Fatalf("ack %+v", r)
	}
	// The last attempt's nack dead-letters the message; redrive sends it back.
	if r := must(c.Nack(ctx, "jobs", "w", 0, "boom", msgs[1].Receipt))(t); r[0].Err() != nil {
		t.Fatalf("nack %+v", r)
	}
	tu.Eventually(t, 20*time.Second, "the dead letter", func() bool {
		st := must(c.Subscription(ctx, "jobs", "w"))(t)
		return st.Stats.Acked == 1 && st.Stats.DeadLettered == 1 && len(st.Raw) > 0
	})
	if n := must(c.Redrive(ctx, "jobs-dlq", "jobs", 0))(t); n != 1 {
		t.Fatalf("redriven %d", n)
	}
	auto := must(c.Receive(ctx, "jobs", "w", client.ReceiveOptions{Wait: 10 * time.Second, AutoAck: true}))(t)
	if len(auto) != 1 || string(auto[0].Value) != "two" {
		t.Fatalf("redriven message %+v", auto)
	}
	noErr(t, c.DeleteSubscription(ctx, "jobs", "w"))
	if _, err := c.Subscription(ctx, "jobs", "w"); !errors.Is(err, client.CodeSubscriptionNotFound) {
		t.Fatalf("deleted: %v", err)
	}
}

// next returns a stream's next event within the test's deadline.
func next(t *testing.T, s *client.Stream) *client.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return must(s.Next(ctx))(t)
}

// TestClientWebSocket: a log subscription with credits (automatic and
// manual), produce over the socket, a group member with commit, and a
// queue receiver answering over the socket.
func TestClientWebSocket(t *testing.T) {
	c, ctx := sdkNode(t, fastQueues)
	must(c.CreateTopic(ctx, client.TopicConfig{Name: "w"}))(t)
	conn := must(c.Dial(ctx))(t)
	defer conn.Close()
	res := must(conn.Produce(ctx, "w", recs("a", "b", "c", "d", "e")))(t)
	if len(res.Offsets) != 5 || res.Offsets[4].Offset != 4 {
		t.Fatalf("ws produce %+v", res)
	}

	// Credit 2: at most 2 records in flight; Next grants them back.
	auto := must(conn.Subscribe(ctx, client.SubscribeOptions{Topic: "w", From: client.Earliest, Credit: 2}))(t)
	var vals []string
	for len(vals) < 5 {
		ev := next(t, auto)
		if len(ev.Records) > 2 {
			t.Fatalf("%d records with credit 2", len(ev.Records))
		}
		for _, r := range ev.Records {
			vals = append(vals, string(r.Value))
		}
	}
	if fmt.Sprint(vals) != "[a b c d e]" {
		t.Fatalf("streamed %v", vals)
	}
	noErr(t, auto.Close(ctx))
	if _, err := auto.Next(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	manual := must(conn.Subscribe(ctx, client.SubscribeOptions{Topic: "w", Offset: 3, Credit: 1, ManualCredit: true}))(t)
	if ev := next(t, manual); len(ev.Records) != 1 || ev.Records[0].Offset != 3 {
		t.Fatalf("manual first %+v", ev)
	}
	noErr(t, manual.Credit(ctx, 1))
	if ev := next(t, manual); len(ev.Records) != 1 || ev.Records[0].Offset != 4 {
		t.Fatalf("manual second %+v", ev)
	}

	member := must(conn.Subscribe(ctx, client.SubscribeOptions{Topic: "w", Group: "wsg", From: client.Earliest}))(t)
	var assigned *client.GroupAssignment
	var n int
	for n < 5 {
		ev := next(t, member)
		if ev.Assigned != nil {
			assigned = ev.Assigned
		}
		n += len(ev.Records)
	}
	if assigned == nil || fmt.Sprint(assigned.Partitions) != "[0]" {
		t.Fatalf("assigned %+v", assigned)
	}
	noErr(t, member.Commit(ctx, []client.RecordOffset{{Partition: 0, Offset: 5}}))
	if o := must(c.GroupOffsets(ctx, "wsg", "w"))(t); len(o) != 1 || o[0].Offset != 5 {
		t.Fatalf("ws commit %+v", o)
	}

	checkWSQueue(t, ctx, c, conn)
}

// checkWSQueue: a queue subscription's receiver on a socket extends,
// nacks and acks its messages over it.
func checkWSQueue(t *testing.T, ctx context.Context, c *client.Client, conn *client.Conn) {
	must(c.CreateSubscription(ctx, "w", client.SubscriptionConfig{Name: "q"}))(t)
	q := must(conn.Subscribe(ctx, client.SubscribeOptions{Topic: "w", Subscription: "q", Credit: 5}))(t)
	var receipts []string
	for len(receipts) < 5 {
		for _, m := range next(t, q).Messages {
			receipts = append(receipts, m.Receipt)
		}
	}
	if r := must(q.Extend(ctx, time.Minute, receipts[0]))(t); r[0].Err() != nil {
		t.Fatalf("ws extend %+v", r)
	}
	if r := must(q.Nack(ctx, time.Hour, "later", receipts[1]))(t); r[0].Err() != nil {
		t.Fatalf("ws nack %+v", r)
	}
	if r := must(q.Ack(ctx, receipts[0], receipts[2], receipts[3], receipts[4]))(t); len(r) != 4 || r[3].Err() != nil {
		t.Fatalf("ws ack %+v", r)
	}
	tu.Eventually(t, 10*time.Second, "acks counted", func() bool {
		st := must(c.Subscription(ctx, "w", "q"))(t)
		return st.Stats != nil && st.Stats.Acked == 4
	})
}

// TestClientPipelines: modules and pipelines through the client.
func TestClientPipelines(t *testing.T) {
	c, ctx := sdkNode(t)
	for _, n := range []string{"in", "out"} {
		must(c.CreateTopic(ctx, client.TopicConfig{Name: n}))(t)
	}
	wasm := tu.BuildWasm(t, "examples/passthrough")
	v1 := must(c.UploadModule(ctx, "pass", wasm))(t)
	v2 := must(c.UploadModule(ctx, "pass", wasm))(t)
	if v1.Version != 1 || v2.Version != 2 || v1.Size != int64(len(wasm)) {
		t.Fatalf("uploaded %+v %+v", v1, v2)
	}
	if ms := must(c.Modules(ctx))(t); len(ms) != 1 || ms[0].Latest != 2 {
		t.Fatalf("modules %+v", ms)
	}
	if m := must(c.Module(ctx, "pass"))(t); len(m.Versions) != 2 {
		t.Fatalf("module %+v", m)
	}
	p := must(c.CreatePipeline(ctx, client.PipelineConfig{Name: "p", Module: "pass", Version: 1, Inputs: []string{"in"}, Outputs: []string{"out"}}))(t)
	if p.Module != "pass" || p.Version != 1 {
		t.Fatalf("pipeline %+v", p)
	}
	must(c.Produce(ctx, "in", recs("x")))(t)
	tu.Eventually(t, 30*time.Second, "the pipeline's output", func() bool { return len(fetchValues(t, c, "out", 0)) == 1 })
	if ps := must(c.Pipelines(ctx))(t); len(ps) != 1 || ps[0].Name != "p" {
		t.Fatalf("pipelines %+v", ps)
	}
	noErr(t, c.PausePipeline(ctx, "p"))
	if d := must(c.Pipeline(ctx, "p"))(t); !d.Pipeline.Paused || d.State != "paused" || len(d.Raw) == 0 || len(d.Partitions) != 1 {
		t.Fatalf("paused %+v", d)
	}
	noErr(t, c.ResumePipeline(ctx, "p"))
	up := must(c.UpgradePipeline(ctx, "p", client.PipelineUpgrade{Module: "pass", Version: 2}))(t)
	if up.Version != 2 || up.Revision != 1 {
		t.Fatalf("upgraded %+v", up)
	}
	if _, next, err := c.PipelineLogs(ctx, "p", 0, 0); err != nil || next < 0 {
		t.Fatalf("logs: %d %v", next, err)
	}
	noErr(t, c.DeletePipeline(ctx, "p", true))
	if _, err := c.Pipeline(ctx, "p"); !errors.Is(err, client.CodePipelineNotFound) {
		t.Fatalf("deleted pipeline: %v", err)
	}
	noErr(t, c.DeleteModule(ctx, "pass"))
	if _, err := c.Module(ctx, "pass"); !errors.Is(err, client.CodeModuleNotFound) {
		t.Fatalf("deleted module: %v", err)
	}
}

// TestClientPartialProduce: a produce over three partitions, one of
// which has its only replica on a stopped node, commits the other two and
// says so; resending the failed records once the node is back stores
// every record exactly once.
func TestClientPartialProduce(t *testing.T) {
	cl := startCluster(t, 3, func(c *Config) { c.Gateway.ProduceTimeout = 3 * time.Second })
	ctx := testCtx(t)
	c := sdkClient(t, cl.nodes[1].URL())
	must(c.CreateTopic(ctx, client.TopicConfig{Name: "pp", Partitions: 3, ReplicationFactor: 1}))(t)
	// The partition whose replica is on another node than node 1.
	var victim uint64
	down := -1
	tu.Eventually(t, 30*time.Second, "leaders", func() bool {
		st := must(c.Cluster(ctx, true))(t)
		for _, p := range st.PartitionList {
			if p.Topic == "pp" && p.Leader != 0 && p.Leader != 1 {
				victim, down = p.Leader, p.Partition
			}
		}
		return down >= 0
	})
	in := make([]client.Record, 6)
	for i := range in {
		in[i] = client.Record{Value: []byte(fmt.Sprint("r", i)), Partition: client.Part(i % 3)}
	}
	must(c.Produce(ctx, "pp", in[:3]))(t) // every partition serves
	stop(t, cl.nodes[victim])
	delete(cl.nodes, victim)

	_, err := c.Produce(ctx, "pp", in[3:])
	var pe *client.ProduceError
	if !errors.As(err, &pe) || pe.Err.Status != 503 {
		t.Fatalf("produce with partition %d down: %v", down, err)
	}
	if f := pe.FailedPartitions(); len(f) != 1 || f[0].Partition != down || f[0].Err == nil {
		t.Fatalf("failed %+v", f)
	}
	if cm := pe.Committed(); len(cm) != 2 || cm[0].BaseOffset != 1 || cm[1].BaseOffset != 1 {
		t.Fatalf("committed %+v", cm)
	}
	if len(pe.Failed) != 1 || string(pe.Failed[0].Value) != fmt.Sprint("r", 3+down) || pe.Offsets[down].Offset != -1 {
		t.Fatalf("failed records %+v, offsets %+v", pe.Failed, pe.Offsets)
	}
	cl.nodes[victim] = cl.start(victim, "")
	tu.Eventually(t, 60*time.Second, "the partition back", func() bool {
		_, err := c.Fetch(ctx, "pp", down, client.FetchOptions{})
		return err == nil
	})
	must(c.Produce(ctx, "pp", pe.Failed))(t)
	for p := range 3 {
		if v := fetchValues(t, c, "pp", p); fmt.Sprint(v) != fmt.Sprintf("[r%d r%d]", p, p+3) {
			t.Fatalf("partition %d: %v", p, v)
		}
	}
	if moves, err := c.Rebalance(ctx); err != nil || moves < 0 {
		t.Fatalf("rebalance: %d %v", moves, err)
	}
	noErr(t, c.RemoveNode(ctx, victim))
	tu.Eventually(t, 30*time.Second, "the node draining", func() bool {
		for _, n := range must(c.Cluster(ctx, false))(t).Nodes {
			if n.ID == victim && n.State != "active" {
				return true
			}
		}
		return false
	})
}

// TestClientQuotas drives /v1/quotas through the client: set, get, list,
// remove, and a produce over the default quota surfaced as rate_limited
// (with retries off: the request can never fit the bucket).
func TestClientQuotas(t *testing.T) {
	s := startNode(t, t.TempDir())
	t.Cleanup(func() { stop(t, s) })
	ctx := testCtx(t)
	c, err := client.New(s.URL(), client.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	must(c.CreateTopic(ctx, client.TopicConfig{Name: "q"}))(t)
	set := must(c.SetQuota(ctx, "alice", client.Quota{ProduceBytesPerSec: 2048, RequestsPerSec: 5}))(t)
	if set.Principal != "alice" || set.ProduceBytesPerSec != 2048 || set.RequestsPerSec != 5 || set.FetchBytesPerSec != 0 {
		t.Fatalf("set: %+v", set)
	}
	if got := must(c.Quota(ctx, "alice"))(t); *got != *set {
		t.Fatalf("get: %+v, want %+v", got, set)
	}
	must(c.SetQuota(ctx, "default", client.Quota{ProduceBytesPerSec: 1000}))(t)
	if qs := must(c.Quotas(ctx))(t); len(qs) != 2 || qs[0].Principal != "alice" || qs[1].Principal != "default" {
		t.Fatalf("list: %+v", qs)
	}
	if err := c.DeleteQuota(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Quota(ctx, "alice"); !errors.Is(err, client.CodeNotFound) {
		t.Fatalf("get after remove: %v, want not_found", err)
	}
	if err := c.DeleteQuota(ctx, "alice"); !errors.Is(err, client.CodeNotFound) {
		t.Fatalf("remove twice: %v, want not_found", err)
	}
	// Anonymous traffic (auth off) uses the default quota: 10 KiB can never
	// fit 1,000 bytes/s, and nothing of it is written.
	_, err = c.Produce(ctx, "q", []client.Record{{Value: make([]byte, 10<<10)}})
	if !errors.Is(err, client.CodeRateLimited) {
		t.Fatalf("produce over the default quota: %v, want rate_limited", err)
	}
	if tp := must(c.Topic(ctx, "q"))(t); tp.Partitions[0].HighWatermark != 0 {
		t.Fatalf("a refused produce wrote: %+v", tp.Partitions[0])
	}
}

// TestClientPrioritySubscription creates a priority subscription through
// the client, reads its options back, and receives the higher priority
// first.
func TestClientPrioritySubscription(t *testing.T) {
	c, ctx := sdkNode(t)
	must(c.CreateTopic(ctx, client.TopicConfig{Name: "jobs"}))(t)
	made := must(c.CreateSubscription(ctx, "jobs", client.SubscriptionConfig{Name: "p", Priority: true, PriorityGuardEvery: 7}))(t)
	got := must(c.Subscription(ctx, "jobs", "p"))(t)
	if !made.Priority || !got.Priority || got.PriorityGuardEvery != 7 {
		t.Fatalf("created %+v, described %+v", made, got)
	}
	must(c.Produce(ctx, "jobs", []client.Record{
		{Value: []byte("low"), Headers: map[string]string{"weir-priority": "1"}},
		{Value: []byte("high"), Headers: map[string]string{"weir-priority": "9"}},
	}))(t)
	var msgs []client.Message
	tu.Eventually(t, 20*time.Second, "two messages", func() bool {
		msgs = append(msgs, must(c.Receive(ctx, "jobs", "p", client.ReceiveOptions{MaxRecords: 2, Wait: time.Second}))(t)...)
		return len(msgs) >= 2
	})
	if string(msgs[0].Value) != "high" || string(msgs[1].Value) != "low" {
		t.Fatalf("received %q then %q, want high then low", msgs[0].Value, msgs[1].Value)
	}
}
