package server

import (
	"bytes"
	"errors"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// prioOf returns a received message's weir-priority as a number (0 when absent).
func prioOf(t *testing.T, m qmsg) int {
	t.Helper()
	v, ok := m.Headers[core.HeaderPriority]
	if !ok {
		return 0
	}
	p, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("priority header %q", v)
	}
	return p
}

// receiveAllOneByOne receives and acks one message at a time until none
// is deliverable, and returns them in the order received.
func receiveAllOneByOne(t *testing.T, u, topic, sub string) []qmsg {
	t.Helper()
	var out []qmsg
	for range 1000 {
		ms := receive(t, u, topic, sub, map[string]any{"max_records": 1})
		if len(ms) == 0 {
			return out
		}
		out = append(out, ms[0])
		if res := receipts(t, u, topic, sub, "ack", receiptsOf(ms), nil); res[0].Status != "ok" {
			t.Fatalf("ack: %+v", res[0])
		}
	}
	t.Fatal("receive never ran dry")
	return nil
}

// checkPriorityOrder fails unless ms come highest priority first and, within
// a priority and partition, in offset order.
func checkPriorityOrder(t *testing.T, ms []qmsg) {
	t.Helper()
	last := map[[2]int]int64{}
	for i, m := range ms {
		p := prioOf(t, m)
		if i > 0 && p > prioOf(t, ms[i-1]) {
			t.Fatalf("message %d (priority %d, %s) after one of priority %d", i, p, m.Value, prioOf(t, ms[i-1]))
		}
		k := [2]int{p, m.Partition}
		if off, ok := last[k]; ok && m.Offset < off {
			t.Fatalf("priority %d partition %d: offset %d after %d", p, m.Partition, m.Offset, off)
		}
		last[k] = m.Offset
	}
}

// TestQueuePriorityHTTP: a priority subscription hands out mixed
// priorities strictly highest first over HTTP, produced by every front
// door that can set the header, and produce refuses bad values on each.
func TestQueuePriorityHTTP(t *testing.T) {
	s := startNode(t, t.TempDir(), fastQueues)
	defer stop(t, s)
	u := s.URL()
	if r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": "pq", "partitions": 2}); r.Status != 201 {
		t.Fatalf("create topic: %d %s", r.Status, r.Body)
	}
	waitServing(t, u, "pq")
	createSub(t, u, "pq", map[string]any{"name": "p", "priority": true})
	createSub(t, u, "pq", map[string]any{"name": "g", "priority": true, "priority_guard_every": 4})
	createSub(t, u, "pq", map[string]any{"name": "plain"})
	var list struct {
		Subscriptions []struct {
			Name       string `json:"name"`
			Priority   *bool  `json:"priority"`
			GuardEvery *int   `json:"priority_guard_every"`
		} `json:"subscriptions"`
	}
	tu.Do(t, "GET", u+"/v1/topics/pq/subscriptions", nil).JSON(t, &list)
	shown := map[string]string{}
	for _, x := range list.Subscriptions {
		if x.Priority == nil {
			t.Fatalf("list: %s without priority", x.Name)
		}
		g := -1
		if x.GuardEvery != nil {
			g = *x.GuardEvery
		}
		shown[x.Name] = strconv.FormatBool(*x.Priority) + "/" + strconv.Itoa(g)
	}
	if shown["p"] != "true/0" || shown["g"] != "true/4" || shown["plain"] != "false/-1" {
		t.Fatalf("list shows %v", shown)
	}
	if r := tu.Do(t, "POST", u+"/v1/topics/pq/subscriptions", map[string]any{"name": "x", "priority_guard_every": 2}); r.Status != 400 || r.ErrorCode() != "bad_request" {
		t.Fatalf("a guard without priority: %d %s", r.Status, r.Body)
	}

	// Produce: JSON with headers (some without), a raw body, a binary batch.
	var recs []map[string]any
	for i := range 24 {
		rec := map[string]any{"value": "j" + strconv.Itoa(i), "partition": i % 2}
		if i%5 != 0 {
			rec["headers"] = map[string]string{core.HeaderPriority: strconv.Itoa(i * 7 % 10)}
		}
		recs = append(recs, rec)
	}
	produceJSON(t, u, "pq", recs...)
	if r := tu.Do(t, "POST", u+"/v1/topics/pq/records?partition=1&priority=6", "raw", "text/plain"); r.Status != 200 {
		t.Fatalf("raw produce: %d %s", r.Status, r.Body)
	}
	bin := gateway.AppendProduceBinary(nil, &core.ProduceRequest{Records: []core.ProduceRecord{
		{Partition: 0, Record: core.Record{Value: []byte("bin"), Headers: []core.Header{{Key: core.HeaderPriority, Value: "8"}}}}}})
	if r := tu.Do(t, "POST", u+"/v1/topics/pq/records", bin, "application/vnd.weir.records"); r.Status != 200 {
		t.Fatalf("binary produce: %d %s", r.Status, r.Body)
	}

	// Bad values: 400 bad_request on every path, and nothing written.
	bad := []func() *tu.Response{
		func() *tu.Response {
			return tu.Do(t, "POST", u+"/v1/topics/pq/records", map[string]any{"records": []any{
				map[string]any{"value": "ok"}, map[string]any{"value": "x", "headers": map[string]string{core.HeaderPriority: "10"}}}})
		},
		func() *tu.Response {
			return tu.Do(t, "POST", u+"/v1/topics/pq/records?acks=none", map[string]any{"records": []any{
				map[string]any{"value": "x", "headers": map[string]string{core.HeaderPriority: "high"}}}})
		},
		func() *tu.Response {
			return tu.Do(t, "POST", u+"/v1/topics/pq/records?priority=-1", "raw", "text/plain")
		},
		func() *tu.Response {
			b := gateway.AppendProduceBinary(nil, &core.ProduceRequest{Records: []core.ProduceRecord{
				{Partition: 0, Record: core.Record{Value: []byte("x"), Headers: []core.Header{{Key: core.HeaderPriority, Value: ""}}}}}})
			return tu.Do(t, "POST", u+"/v1/topics/pq/records", b, "application/vnd.weir.records")
		},
	}
	for i, f := range bad {
		if r := f(); r.Status != 400 || r.ErrorCode() != "bad_request" {
			t.Fatalf("bad priority %d: %d %s", i, r.Status, r.Body)
		}
	}
	c := dialWS(t, u, "/v1/ws", nil)
	defer c.close()
	c.send(map[string]any{"op": "produce", "id": "bad", "topic": "pq",
		"records": []map[string]any{{"value": "x", "headers": map[string]string{core.HeaderPriority: "99"}}}})
	if m, _ := c.expect(0, "error", "bad"); m.Error == nil || m.Error.Code != "bad_request" {
		t.Fatalf("WebSocket produce with a bad priority: %s", m.raw)
	}
	c.send(map[string]any{"op": "produce", "id": "ok", "topic": "pq",
		"records": []map[string]any{{"value": "ws", "partition": 1, "headers": map[string]string{core.HeaderPriority: "9"}}}})
	c.expect(0, "produced", "ok")

	got := receiveAllOneByOne(t, u, "pq", "p")
	if len(got) != 27 {
		t.Fatalf("received %d messages, want 27", len(got))
	}
	checkPriorityOrder(t, got)
	if prioOf(t, got[0]) != 9 || prioOf(t, got[len(got)-1]) != 0 {
		t.Fatalf("first message %s (priority %d), want a 9", got[0].Value, prioOf(t, got[0]))
	}
	plain := receive(t, u, "pq", "plain", map[string]any{"max_records": 100})
	if len(plain) != 27 {
		t.Fatalf("plain subscription received %d", len(plain))
	}
	sort.SliceStable(plain, func(i, j int) bool { return plain[i].Partition < plain[j].Partition })
	for i := 1; i < len(plain); i++ {
		if plain[i].Partition == plain[i-1].Partition && plain[i].Offset < plain[i-1].Offset {
			t.Fatal("the plain subscription is not in log order")
		}
	}

	// The guarded subscription: every 4th delivery of a partition is its
	// oldest message. Receive a few so its index and pending counts exist.
	if ms := receive(t, u, "pq", "g", map[string]any{"max_records": 3}); len(ms) != 3 {
		t.Fatalf("guarded receive: %d", len(ms))
	}
	st := struct {
		Priority bool `json:"priority"`
		Stats    struct {
			Pending map[string]int64 `json:"pending_by_priority"`
		} `json:"stats"`
	}{}
	tu.Do(t, "GET", subURL(u, "pq", "g"), nil).JSON(t, &st)
	var pending int64
	for _, n := range st.Stats.Pending {
		pending += n
	}
	if !st.Priority || pending != 24 {
		t.Fatalf("describe: %+v, want 24 pending", st)
	}
	metric := regexp.MustCompile(`(?m)^weir_queue_pending\{[^}]*priority="0"[^}]*subscription="g"[^}]*\} (\d+)`)
	tu.Eventually(t, 10*time.Second, "weir_queue_pending for g", func() bool {
		r, err := tu.TryDo("GET", u+"/metrics", nil)
		return err == nil && metric.Match(r.Body) && !bytes.Contains(r.Body, []byte(`subscription="plain"`))
	})
}

// TestKafkaRefusesBadPriority: a Kafka producer's record with a bad
// weir-priority header is refused with INVALID_RECORD; a good one goes
// through and orders a priority subscription.
func TestKafkaRefusesBadPriority(t *testing.T) {
	s := startKafkaNode(t)
	u := s.URL()
	if r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": "kp", "partitions": 1}); r.Status != 201 {
		t.Fatalf("create topic: %d %s", r.Status, r.Body)
	}
	waitServing(t, u, "kp")
	createSub(t, u, "kp", map[string]any{"name": "p", "priority": true})
	cl := kafkaClient(t, s, kgo.DefaultProduceTopic("kp"), kgo.MaxProduceRequestsInflightPerBroker(1), kgo.RecordRetries(1))
	ctx := kctx(t)
	hdr := func(v string) []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: core.HeaderPriority, Value: []byte(v)}}
	}
	err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("bad"), Headers: hdr("11")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("bad priority over Kafka: %v, want INVALID_RECORD", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("low"), Headers: hdr("1")}, &kgo.Record{Value: []byte("high"), Headers: hdr("8")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range receive(t, u, "kp", "p", map[string]any{"max_records": 10}) {
		got = append(got, m.Value)
	}
	if strings.Join(got, ",") != "high,low" {
		t.Fatalf("received %v, want high,low (and nothing of the refused record)", got)
	}
}

// TestQueuePriorityFailover: a priority subscription's pending index is
// replicated state: when the partition's leader goes away, a surviving
// node goes on in priority order, and what was leased stays leased.
func TestQueuePriorityFailover(t *testing.T) {
	c := startCluster(t, 3, fastQueues)
	u := func(id uint64) string { return c.nodes[id].URL() }
	if r := tu.Do(t, "POST", u(1)+"/v1/topics", map[string]any{"name": "pf", "partitions": 1, "replication_factor": 3}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 60*time.Second, "settled", func() bool { return tu.Settled(tu.ClusterStatus(t, u(1))) })
	leader := tu.LeaderOf(t, u(1), "pf", 0)
	if leader == 0 {
		t.Fatal("no leader")
	}
	other := leader%3 + 1
	createSub(t, u(leader), "pf", map[string]any{"name": "p", "priority": true, "visibility_timeout_ms": 600000})
	var recs []map[string]any
	for i := range 12 {
		recs = append(recs, map[string]any{"value": strconv.Itoa(i), "headers": map[string]string{core.HeaderPriority: strconv.Itoa(i * 7 % 10)}})
	}
	produceJSON(t, u(leader), "pf", recs...)
	held := receive(t, u(leader), "pf", "p", map[string]any{"max_records": 2})
	if len(held) != 2 || prioOf(t, held[0]) != 9 || prioOf(t, held[1]) != 8 {
		t.Fatalf("before the failover: %+v", held)
	}

	stop(t, c.nodes[leader])
	delete(c.nodes, leader)
	tu.Eventually(t, 60*time.Second, "a new leader", func() bool {
		l := tu.LeaderOf(t, u(other), "pf", 0)
		return l != 0 && l != leader
	})
	var got []qmsg
	tu.Eventually(t, 30*time.Second, "the first message after the failover", func() bool {
		ms, err := tryReceive(u(other), "pf", "p", map[string]any{"max_records": 1, "wait_ms": 500})
		if err != nil {
			t.Logf("receive during failover: %v", err)
			return false
		}
		got = append(got, ms...)
		return len(got) > 0
	})
	receipts(t, u(other), "pf", "p", "ack", receiptsOf(got), nil)
	got = append(got, receiveAllOneByOne(t, u(other), "pf", "p")...)
	if len(got) != 10 {
		t.Fatalf("after the failover: %d messages, want the 10 not leased before", len(got))
	}
	for _, m := range got {
		if m.Value == held[0].Value || m.Value == held[1].Value {
			t.Fatalf("%s, leased before the failover, was handed out again", m.Value)
		}
	}
	checkPriorityOrder(t, got)
}
