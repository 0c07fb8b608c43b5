package server

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/core/quota"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// Quotas are tiny (1000 bytes/s) and the bodies much larger than a bucket
// plus what the wait bound refills, so whether a request is refused never
// depends on the machine's speed.

const quotaWait = 50 * time.Millisecond // the nodes' --quota-max-wait

func quickQuotas(c *Config) { c.Quotas.MaxWait = quotaWait }

type quotaList struct {
	Quotas []quota.Quota `json:"quotas"`
}

// waitQuota waits until the node of c lists principal's quota as want
// (nil: no quota): what its limiter enforces from then on.
func waitQuota(t *testing.T, c *secClient, principal string, want *quota.Quota) {
	t.Helper()
	tu.Eventually(t, 30*time.Second, "quota of "+principal+" at "+c.base, func() bool {
		var l quotaList
		c.expect(200, "GET", "/v1/quotas", nil).JSON(t, &l)
		for _, q := range l.Quotas {
			if q.Principal == principal {
				return want != nil && q == *want
			}
		}
		return want == nil
	})
}

// expect429 checks a rate_limited answer with an integral Retry-After of
// at least min seconds.
func expect429(t *testing.T, r *tu.Response, min int) {
	t.Helper()
	if r.Status != 429 || r.ErrorCode() != "rate_limited" {
		t.Fatalf("HTTP %d %.200s, want 429 rate_limited", r.Status, r.Body)
	}
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra < min {
		t.Fatalf("Retry-After %q, want an integer ≥ %d", r.Header.Get("Retry-After"), min)
	}
}

func highWatermark(t *testing.T, admin *secClient, topic string) int64 {
	t.Helper()
	var ti struct {
		Partitions []struct {
			HighWatermark int64 `json:"high_watermark"`
		} `json:"partitions"`
	}
	admin.expect(200, "GET", "/v1/topics/"+topic, nil).JSON(t, &ti)
	return ti.Partitions[0].HighWatermark
}

// offsetOf returns the offset of a produce answer's first record.
func offsetOf(t *testing.T, r *tu.Response) int64 {
	t.Helper()
	var o offsetsResp
	r.JSON(t, &o)
	if len(o.Offsets) == 0 {
		t.Fatalf("no offsets in %s", r.Body)
	}
	return o.Offsets[0].Offset
}

func recordsOf(value string) map[string]any {
	return map[string]any{"records": []map[string]any{{"value": value}}}
}

// TestQuotaAPI: admins set, list and remove quotas; others get 403; bad
// input gets 400.
func TestQuotaAPI(t *testing.T) {
	s := securedNode(t)
	defer stop(t, s)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	alice := admin.with(createToken(t, admin, "alice"))

	var got quota.Quota
	admin.expect(200, "PUT", "/v1/quotas/alice", map[string]any{"produce_bytes_per_sec": 1000, "requests_per_sec": 5}).JSON(t, &got)
	if want := (quota.Quota{Principal: "alice", ProduceBytesPerSec: 1000, RequestsPerSec: 5}); got != want {
		t.Fatalf("PUT answered %+v, want %+v", got, want)
	}
	admin.expect(200, "PUT", "/v1/quotas/default", map[string]any{"fetch_bytes_per_sec": 2048})
	var l quotaList
	admin.expect(200, "GET", "/v1/quotas", nil).JSON(t, &l)
	if len(l.Quotas) != 2 || l.Quotas[0] != got || l.Quotas[1] != (quota.Quota{Principal: "default", FetchBytesPerSec: 2048}) {
		t.Fatalf("GET /v1/quotas: %+v", l.Quotas)
	}
	// A listed quota can be sent back as it is.
	admin.expect(200, "PUT", "/v1/quotas/alice", l.Quotas[0])

	for _, bad := range []struct {
		path string
		body any
	}{
		{"/v1/quotas/alice", map[string]any{"produce_bytes_per_sec": -1}},
		{"/v1/quotas/alice", map[string]any{"requests_per_sec": 1.5}},
		{"/v1/quotas/alice", map[string]any{"produce_bytes": 1}},
		{"/v1/quotas/alice", map[string]any{"principal": "bob"}},
		{"/v1/quotas/alice", map[string]any{"fetch_bytes_per_sec": int64(quota.MaxRate) + 1}},
		{"/v1/quotas/alice", []byte(`[1]`)},
		{"/v1/quotas/bad*name", map[string]any{}},
	} {
		if r := admin.do("PUT", bad.path, bad.body); r.Status != 400 || r.ErrorCode() != "bad_request" {
			t.Errorf("PUT %s %v: HTTP %d %s, want 400 bad_request", bad.path, bad.body, r.Status, r.Body)
		}
	}
	// Admins only.
	alice.expect(403, "GET", "/v1/quotas", nil)
	alice.expect(403, "PUT", "/v1/quotas/alice", map[string]any{})
	alice.expect(403, "DELETE", "/v1/quotas/alice", nil)

	admin.expect(204, "DELETE", "/v1/quotas/alice", nil)
	if r := admin.do("DELETE", "/v1/quotas/alice", nil); r.Status != 404 || r.ErrorCode() != "not_found" {
		t.Fatalf("DELETE of a missing quota: HTTP %d %s, want 404 not_found", r.Status, r.Body)
	}
	admin.expect(200, "GET", "/v1/quotas", nil).JSON(t, &l)
	if len(l.Quotas) != 1 || l.Quotas[0].Principal != "default" {
		t.Fatalf("after DELETE: %+v", l.Quotas)
	}
}

// TestQuotaEnforcedOnEveryNode: a principal over its produce quota is
// refused on whichever node it uses (HTTP and WebSocket), nothing is
// written, changes apply without a restart, and the throttling shows in
// /metrics and the audit log.
func TestQuotaEnforcedOnEveryNode(t *testing.T) {
	c := startCluster(t, 2, func(cfg *Config) {
		cfg.Security = SecurityConfig{Auth: true, AdminToken: testAdminToken, ClusterSecret: "cluster-secret-0123456789"}
		quickQuotas(cfg)
	})
	var admins, alices []*secClient
	for _, id := range []uint64{1, 2} {
		admins = append(admins, newSecClient(t, c.nodes[id].URL(), testAdminToken, nil))
	}
	admin := admins[0]
	tok := createToken(t, admin, "alice")
	addACL(t, admin, "alice", auth.Topic, "q", auth.Literal, auth.Read, auth.Write)
	for _, a := range admins {
		alices = append(alices, a.with(tok))
	}
	admin.expect(201, "POST", "/v1/topics", map[string]any{"name": "q", "partitions": 1, "replication_factor": 2})
	// Both nodes take alice's writes before any quota is set. Idempotent
	// (one producer and sequence per node): an attempt that failed but
	// commits late is the same record, so every record of q is accounted for.
	var last int64 = -1 // the offset of the last record acknowledged
	for i, a := range alices {
		warm := map[string]any{"producer_id": fmt.Sprint("warm-", i), "sequence": 0, "records": []map[string]any{{"value": "warm-up", "partition": 0}}}
		tu.Eventually(t, 30*time.Second, "alice's produce at "+a.base, func() bool {
			r := a.do("POST", "/v1/topics/q/records", warm)
			if r.Status == 200 {
				last = max(last, offsetOf(t, r))
			}
			return r.Status == 200
		})
	}
	big := recordsOf(strings.Repeat("x", 20000)) // 20 times the bucket
	// afterRefusal checks that a refused produce wrote nothing: the next
	// record acknowledged through a is the one after the last.
	afterRefusal := func(a *secClient) {
		t.Helper()
		o := offsetOf(t, a.expect(200, "POST", "/v1/topics/q/records", recordsOf("small"))) // fits in the bucket
		if o != last+1 {
			t.Fatalf("a refused produce wrote: the next record got offset %d, want %d", o, last+1)
		}
		last = o
		tu.Eventually(t, 30*time.Second, "node 1 applied offset "+fmt.Sprint(o), func() bool { return highWatermark(t, admin, "q") > o })
		if hw := highWatermark(t, admin, "q"); hw != o+1 {
			t.Fatalf("high watermark %d, want %d", hw, o+1)
		}
	}

	slow := quota.Quota{Principal: "alice", ProduceBytesPerSec: 1000}
	admin.expect(200, "PUT", "/v1/quotas/alice", slow)
	for i, a := range alices {
		waitQuota(t, admins[i], "alice", &slow)
		expect429(t, a.do("POST", "/v1/topics/q/records", big), 19)
		afterRefusal(a)
	}
	// The WebSocket produce frame is refused the same way.
	ws := dialWS(t, c.nodes[2].URL(), "/v1/ws", http.Header{"Authorization": {"Bearer " + tok}})
	ws.send(map[string]any{"op": "produce", "id": "p1", "topic": "q", "records": big["records"]})
	m, _ := ws.expect(0, "error", "p1")
	if m.Error.Code != "rate_limited" || !strings.Contains(m.raw, `"retry_after_ms":`) {
		t.Fatalf("WebSocket produce over quota: %s", m.raw)
	}
	afterRefusal(alices[1])

	// Raised: applies on both nodes without a restart.
	fast := quota.Quota{Principal: "alice", ProduceBytesPerSec: 100 << 20}
	admin.expect(200, "PUT", "/v1/quotas/alice", fast)
	for i, a := range alices {
		waitQuota(t, admins[i], "alice", &fast)
		a.expect(200, "POST", "/v1/topics/q/records", big)
	}
	// Removed: alice falls back to the default quota, then to none.
	admins[1].expect(204, "DELETE", "/v1/quotas/alice", nil)
	def := quota.Quota{Principal: quota.Default, ProduceBytesPerSec: 1000}
	admins[1].expect(200, "PUT", "/v1/quotas/default", def)
	for i, a := range alices {
		waitQuota(t, admins[i], "alice", nil)
		waitQuota(t, admins[i], quota.Default, &def)
		expect429(t, a.do("POST", "/v1/topics/q/records", big), 19)
	}
	admin.expect(204, "DELETE", "/v1/quotas/default", nil)
	for i, a := range alices {
		waitQuota(t, admins[i], quota.Default, nil)
		a.expect(200, "POST", "/v1/topics/q/records", big)
	}

	expectThrottledMetric(t, admin, "alice", "produce")
	tu.Eventually(t, 30*time.Second, "a throttled event of alice in __audit", func() bool {
		for _, e := range auditEvents(t, admin) {
			if e.Result == "throttled" && e.Principal == "alice" && e.Operation == "produce" && e.Status == 429 {
				return true
			}
		}
		return false
	})
}

// expectThrottledMetric checks that /metrics counts principal's throttled
// requests of kind.
func expectThrottledMetric(t *testing.T, c *secClient, principal, kind string) {
	t.Helper()
	body := c.expect(200, "GET", "/metrics", nil).Body
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "weir_quota_throttled_total{") && strings.Contains(l, `principal="`+principal+`"`) && strings.Contains(l, `kind="`+kind+`"`) {
			return
		}
	}
	t.Fatalf("no weir_quota_throttled_total{principal=%q,kind=%q} in /metrics", principal, kind)
}

// TestQuotaFetchAndKafka: with auth off everyone is anonymous and gets the
// default quota; a fetch is charged the bytes it returned, so the next
// one waits for the debt; the Kafka listener answers a produce over quota
// with THROTTLING_QUOTA_EXCEEDED and throttle_time_ms, writing nothing.
func TestQuotaFetchAndKafka(t *testing.T) {
	s := startNode(t, t.TempDir(), func(c *Config) { c.KafkaAddr = "127.0.0.1:0"; quickQuotas(c) })
	defer stop(t, s)
	anon := newSecClient(t, s.URL(), "", nil)
	createTopic(t, s.URL(), "raw", 1)
	anon.expect(200, "POST", "/v1/topics/raw/records", recordsOf(strings.Repeat("f", 5000)))

	def := quota.Quota{Principal: quota.Default, FetchBytesPerSec: 1000, ProduceBytesPerSec: 1000}
	anon.expect(200, "PUT", "/v1/quotas/default", def)
	waitQuota(t, anon, quota.Default, &def)
	// The first fetch finds the bucket full; its 5 KB answer leaves a debt
	// of about 4 s, which the next fetch may not wait out.
	anon.expect(200, "GET", "/v1/topics/raw/partitions/0/records?offset=0", nil)
	expect429(t, anon.do("GET", "/v1/topics/raw/partitions/0/records?offset=0", nil), 3)

	cl := kafkaClient(t, s)
	resp := produceRawResp(t, cl, batchBytes(-1, -1, strings.Repeat("k", 20000)))
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.ThrottlingQuotaExceeded.Code || resp.ThrottleMillis < 19000 {
		t.Fatalf("Kafka produce over quota: error %d, throttle_time_ms %d; want THROTTLING_QUOTA_EXCEEDED and ≥ 19000",
			p.ErrorCode, resp.ThrottleMillis)
	}
	if hw := highWatermark(t, anon, "raw"); hw != 1 {
		t.Fatalf("high watermark %d after a refused Kafka produce, want 1", hw)
	}
	// A new connection: the client waits out throttle_time_ms on the old one.
	if ok := produceRaw(t, kafkaClient(t, s), batchBytes(-1, -1, "small")); ok.ErrorCode != 0 {
		t.Fatalf("small Kafka produce: %+v", ok)
	}
	expectThrottledMetric(t, anon, auth.Anonymous, "produce")
	expectThrottledMetric(t, anon, auth.Anonymous, "fetch")
}

// TestQuotaSlowsWebSocketDelivery: pushes to a subscription over the fetch
// quota are delayed until the debt is repaid, never refused.
func TestQuotaSlowsWebSocketDelivery(t *testing.T) {
	s := startNode(t, t.TempDir(), quickQuotas)
	defer stop(t, s)
	anon := newSecClient(t, s.URL(), "", nil)
	createTopic(t, s.URL(), "push", 1)
	def := quota.Quota{Principal: quota.Default, FetchBytesPerSec: 1000}
	anon.expect(200, "PUT", "/v1/quotas/default", def)
	waitQuota(t, anon, quota.Default, &def)
	anon.expect(200, "POST", "/v1/topics/push/records", recordsOf(strings.Repeat("a", 2000)))
	anon.expect(200, "POST", "/v1/topics/push/records", recordsOf("b"))
	// A credit of one record: the first frame (about 2 KB) leaves the fetch
	// bucket about 1 s in debt, and the pump, going on to the second record
	// at once, has to wait for it whatever the machine's speed.
	ws := dialWS(t, s.URL(), "/v1/ws", nil)
	ws.send(map[string]any{"op": "subscribe", "id": "s", "topic": "push", "from": "earliest", "credit": 1})
	ws.wait(10*time.Second, "the first record", func(msgs []wsMsg) bool { return countRecords(msgs, "s") == 1 })
	tu.Eventually(t, 10*time.Second, "a delayed delivery in /metrics", func() bool {
		body := string(anon.expect(200, "GET", "/metrics", nil).Body)
		return strings.Contains(body, "weir_quota_delay_seconds_total{")
	})
	expectThrottledMetric(t, anon, auth.Anonymous, "fetch")
	// Delayed, not refused: the second record comes once the debt is repaid.
	ws.send(map[string]any{"op": "credit", "sub": "s", "records": 1})
	ws.wait(10*time.Second, "the second record", func(msgs []wsMsg) bool { return countRecords(msgs, "s") == 2 })
}
