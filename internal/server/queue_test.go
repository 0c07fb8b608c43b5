package server

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// qmsg is a leased message as receive returns it.
type qmsg struct {
	Receipt        string            `json:"receipt"`
	Partition      int               `json:"partition"`
	Offset         int64             `json:"offset"`
	Attempt        int               `json:"attempt"`
	LeaseExpiresAt int64             `json:"lease_expires_at"`
	Timestamp      int64             `json:"timestamp"`
	Key            *string           `json:"key"`
	Value          string            `json:"value"`
	Headers        map[string]string `json:"headers"`
}

type qresult struct {
	Receipt        string `json:"receipt"`
	Status         string `json:"status"`
	LeaseExpiresAt int64  `json:"lease_expires_at"`
	Error          struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func fastQueues(c *Config) { c.Queues.MaintenanceInterval = 50 * time.Millisecond }

func subURL(u, topic, sub string) string {
	return u + "/v1/topics/" + topic + "/subscriptions/" + sub
}

func createSub(t *testing.T, u, topic string, body map[string]any) {
	t.Helper()
	r := tu.Do(t, "POST", u+"/v1/topics/"+topic+"/subscriptions", body)
	if r.Status != 201 {
		t.Fatalf("create subscription: %d %s", r.Status, r.Body)
	}
}

func tryReceive(u, topic, sub string, body map[string]any) ([]qmsg, error) {
	r, err := tu.TryDo("POST", subURL(u, topic, sub)+"/receive", body)
	if err != nil {
		return nil, err
	}
	if r.Status != 200 {
		return nil, fmt.Errorf("receive: %d %s", r.Status, r.Body)
	}
	var out struct {
		Messages []qmsg `json:"messages"`
	}
	if err := jsonUnmarshal(r.Body, &out); err != nil {
		return nil, err
	}
	return out.Messages, nil
}

func receive(t *testing.T, u, topic, sub string, body map[string]any) []qmsg {
	t.Helper()
	m, err := tryReceive(u, topic, sub, body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tryReceipts(u, topic, sub, op string, body map[string]any) ([]qresult, error) {
	r, err := tu.TryDo("POST", subURL(u, topic, sub)+"/"+op, body)
	if err != nil {
		return nil, err
	}
	if r.Status != 200 {
		return nil, fmt.Errorf("%s: %d %s", op, r.Status, r.Body)
	}
	var out struct {
		Results []qresult `json:"results"`
	}
	if err := jsonUnmarshal(r.Body, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// receipts runs ack, nack or extend on receipts and returns the results.
func receipts(t *testing.T, u, topic, sub, op string, rs []string, extra map[string]any) []qresult {
	t.Helper()
	body := map[string]any{"receipts": rs}
	for k, v := range extra {
		body[k] = v
	}
	res, err := tryReceipts(u, topic, sub, op, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(rs) {
		t.Fatalf("%s: %d results for %d receipts", op, len(res), len(rs))
	}
	return res
}

func receiptsOf(ms []qmsg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Receipt
	}
	return out
}

type subStats struct {
	Stats struct {
		Backlog      int64 `json:"backlog"`
		InFlight     int   `json:"in_flight"`
		Retrying     int   `json:"retrying"`
		Delayed      int   `json:"delayed"`
		Blocked      int   `json:"blocked"`
		DeadPending  int   `json:"dead_letter_pending"`
		Delivered    int64 `json:"delivered"`
		Acked        int64 `json:"acked"`
		Nacked       int64 `json:"nacked"`
		Expired      int64 `json:"expired"`
		DeadLettered int64 `json:"dead_lettered"`
	} `json:"stats"`
	Partitions []struct {
		Partition     int   `json:"partition"`
		Cursor        int64 `json:"cursor"`
		Frontier      int64 `json:"frontier"`
		HighWatermark int64 `json:"high_watermark"`
	} `json:"partitions"`
}

func describeSub(t *testing.T, u, topic, sub string) subStats {
	t.Helper()
	r := tu.Do(t, "GET", subURL(u, topic, sub), nil)
	if r.Status != 200 {
		t.Fatalf("describe: %d %s", r.Status, r.Body)
	}
	var st subStats
	r.JSON(t, &st)
	return st
}

func produceJSON(t *testing.T, u, topic string, recs ...map[string]any) offsetsResp {
	t.Helper()
	r := tu.Do(t, "POST", u+"/v1/topics/"+topic+"/records", map[string]any{"records": recs})
	if r.Status != 200 {
		t.Fatalf("produce: %d %s", r.Status, r.Body)
	}
	var o offsetsResp
	r.JSON(t, &o)
	return o
}

// Competing consumers share the work and no message is ever leased to two
// receivers at once.
func TestQueueCompetingConsumers(t *testing.T) {
	s := startNode(t, t.TempDir(), fastQueues)
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "jobs", 4)
	createSub(t, u, "jobs", map[string]any{"name": "workers", "visibility_timeout_ms": 30000})
	const n, consumers = 2000, 8
	for i := 0; i < n; i += 100 {
		var recs []map[string]any
		for j := i; j < i+100; j++ {
			recs = append(recs, map[string]any{"value": strconv.Itoa(j)})
		}
		produceJSON(t, u, "jobs", recs...)
	}
	var mu sync.Mutex
	holder := map[string]int{} // value → consumer holding its lease
	acked := map[string]int{}
	perConsumer := make([]int, consumers)
	var total atomic.Int64
	deadline := time.Now().Add(90 * time.Second)
	var wg sync.WaitGroup
	for c := 0; c < consumers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for total.Load() < n && time.Now().Before(deadline) && !t.Failed() {
				ms, err := tryReceive(u, "jobs", "workers", map[string]any{"max_records": 10, "wait_ms": 500})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, m := range ms {
					if h, ok := holder[m.Value]; ok {
						t.Errorf("message %s handed to consumer %d while consumer %d holds it", m.Value, c, h)
					}
					holder[m.Value] = c
				}
				mu.Unlock()
				if len(ms) == 0 {
					continue
				}
				res, err := tryReceipts(u, "jobs", "workers", "ack", map[string]any{"receipts": receiptsOf(ms)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, m := range ms {
					if res[i].Status != "ok" {
						t.Errorf("ack of %s: %+v", m.Value, res[i])
					}
					delete(holder, m.Value)
					acked[m.Value]++
					perConsumer[c]++
				}
				mu.Unlock()
				total.Add(int64(len(ms)))
			}
		}()
	}
	wg.Wait()
	if len(acked) != n {
		t.Fatalf("%d distinct messages acked, want %d", len(acked), n)
	}
	for v, k := range acked {
		if k != 1 {
			t.Fatalf("message %s delivered and acked %d times", v, k)
		}
	}
	busy := 0
	for _, k := range perConsumer {
		if k > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Fatalf("work was not shared: per consumer %v", perConsumer)
	}
	st := describeSub(t, u, "jobs", "workers")
	if st.Stats.Acked != n || st.Stats.Delivered != n || st.Stats.Backlog != 0 || st.Stats.InFlight != 0 {
		t.Fatalf("stats after the run: %+v", st.Stats)
	}
	for _, p := range st.Partitions {
		if p.Cursor != p.HighWatermark || p.Frontier != p.HighWatermark {
			t.Fatalf("partition %d: cursor %d frontier %d, high watermark %d", p.Partition, p.Cursor, p.Frontier, p.HighWatermark)
		}
	}
	// The subscription's state is bounded: nothing but the headers is left.
	for p := 0; p < 4; p++ {
		log, err := s.Host.Partition("jobs", p)
		if err != nil {
			t.Fatal(err)
		}
		keys := 0
		log.StateScan("sub/workers/", func(string, []byte) bool { keys++; return true })
		if keys != 1 {
			t.Fatalf("partition %d holds %d state keys for the subscription, want 1 (the header)", p, keys)
		}
	}
	// The consumed part is still in the log for log consumers.
	var f fetchResp
	tu.Do(t, "GET", u+"/v1/topics/jobs/partitions/0/records?offset=earliest", nil).JSON(t, &f)
	if len(f.Records) == 0 || f.LogStart != 0 {
		t.Fatalf("the log was trimmed by the subscription: %+v", f)
	}
	t.Logf("per consumer: %v", perConsumer)
}

// An expired lease redelivers with attempt+1 after the backoff; nack,
// extend and stale receipts behave.
func TestQueueLeaseExpiryNackExtend(t *testing.T) {
	s := startNode(t, t.TempDir(), fastQueues)
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "lease", 1)
	createSub(t, u, "lease", map[string]any{"name": "s", "visibility_timeout_ms": 300,
		"backoff": map[string]any{"initial_ms": 400, "max_ms": 400, "multiplier": 1}})
	produceJSON(t, u, "lease", map[string]any{"value": "m1"})

	first := receive(t, u, "lease", "s", map[string]any{"max_records": 5})
	if len(first) != 1 || first[0].Attempt != 1 || first[0].Value != "m1" {
		t.Fatalf("first receive: %+v", first)
	}
	// receiveAfter receives once at once, then long-polls: whatever comes
	// must not come before notBefore (a check that holds however slow the
	// machine is).
	receiveAfter := func(notBefore int64, what string) ([]qmsg, int64) {
		t.Helper()
		got := receive(t, u, "lease", "s", nil)
		if now := time.Now().UnixMilli(); len(got) > 0 {
			if now < notBefore {
				t.Fatalf("%s handed out at %d, before %d: %+v", what, now, notBefore, got)
			}
			return got, now
		}
		got = receive(t, u, "lease", "s", map[string]any{"wait_ms": 10000})
		return got, time.Now().UnixMilli()
	}
	second, now := receiveAfter(first[0].LeaseExpiresAt+400, "a leased message")
	if len(second) != 1 || second[0].Attempt != 2 || second[0].Offset != first[0].Offset {
		t.Fatalf("redelivery: %+v", second)
	}
	if now < first[0].LeaseExpiresAt+400 {
		t.Fatalf("redelivered at %d, before the lease end %d + backoff 400", now, first[0].LeaseExpiresAt)
	}
	if res := receipts(t, u, "lease", "s", "ack", receiptsOf(first), nil); res[0].Error.Code != "lease_lost" {
		t.Fatalf("ack with the expired receipt: %+v", res[0])
	}
	before := time.Now().UnixMilli()
	res := receipts(t, u, "lease", "s", "extend", receiptsOf(second), map[string]any{"visibility_timeout_ms": 5000})
	if res[0].Status != "ok" || res[0].LeaseExpiresAt < before+5000 {
		t.Fatalf("extend: %+v", res[0])
	}
	nackAt := time.Now().UnixMilli()
	if res := receipts(t, u, "lease", "s", "nack", receiptsOf(second), map[string]any{"delay_ms": 300, "error": "try later"}); res[0].Status != "ok" {
		t.Fatalf("nack: %+v", res[0])
	}
	third, at := receiveAfter(nackAt+300, "a nacked message")
	if len(third) != 1 || third[0].Attempt != 3 || at < nackAt+300 {
		t.Fatalf("after nack: %+v", third)
	}
	if res := receipts(t, u, "lease", "s", "ack", receiptsOf(third), nil); res[0].Status != "ok" {
		t.Fatalf("ack: %+v", res[0])
	}
	if res := receipts(t, u, "lease", "s", "ack", receiptsOf(third), nil); res[0].Status != "ok" {
		t.Fatalf("a repeated ack must succeed: %+v", res[0])
	}
	if res := receipts(t, u, "lease", "s", "nack", receiptsOf(third), nil); res[0].Error.Code != "lease_lost" {
		t.Fatalf("nack after ack: %+v", res[0])
	}
	if res := receipts(t, u, "lease", "s", "ack", []string{"bm90LWEtcmVjZWlwdA"}, nil); res[0].Error.Code != "invalid_receipt" {
		t.Fatalf("forged receipt: %+v", res[0])
	}
	st := describeSub(t, u, "lease", "s").Stats
	if st.Delivered != 3 || st.Acked != 1 || st.Nacked != 1 || st.Expired != 1 || st.Backlog != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// A message that always fails, and one whose consumer always crashes
// without a nack, go to the dead-letter topic after exactly max_attempts
// deliveries, with the dead-letter headers; redrive sends them back.
func TestQueueDeadLetterAndRedrive(t *testing.T) {
	s := startNode(t, t.TempDir(), fastQueues)
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "work", 2)
	createSub(t, u, "work", map[string]any{"name": "w", "visibility_timeout_ms": 200, "max_attempts": 3,
		"backoff": map[string]any{"initial_ms": 50, "max_ms": 50, "multiplier": 1}, "dead_letter_topic": "work-dlq"})
	produceJSON(t, u, "work",
		map[string]any{"key": "a", "value": "fail-me", "partition": 0, "headers": map[string]string{"x-trace": "t1"}},
		map[string]any{"key": "b", "value": "crash-me", "partition": 1})

	attempts := map[string][]int{}
	dlq := func() fetchResp {
		var f fetchResp
		tu.Do(t, "GET", u+"/v1/topics/work-dlq/partitions/0/records?offset=earliest", nil).JSON(t, &f)
		return f
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(dlq().Records) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not dead-lettered in time; attempts %v, dlq %+v", attempts, dlq())
		}
		for _, m := range receive(t, u, "work", "w", map[string]any{"wait_ms": 300}) {
			attempts[m.Value] = append(attempts[m.Value], m.Attempt)
			if m.Value == "fail-me" {
				receipts(t, u, "work", "w", "nack", []string{m.Receipt}, map[string]any{"error": "boom"})
			} // crash-me: the consumer dies without a word
		}
	}
	for _, v := range []string{"fail-me", "crash-me"} {
		if fmt.Sprint(attempts[v]) != "[1 2 3]" {
			t.Fatalf("%s delivered with attempts %v, want [1 2 3]", v, attempts[v])
		}
	}
	if got := receive(t, u, "work", "w", map[string]any{"wait_ms": 400}); len(got) != 0 {
		t.Fatalf("dead-lettered messages delivered again: %+v", got)
	}
	f := dlq()
	if len(f.Records) != 2 {
		t.Fatalf("dead-letter topic holds %d records, want 2 (no duplicates)", len(f.Records))
	}
	byValue := map[string]map[string]string{}
	for _, r := range f.Records {
		byValue[r.Value] = r.Headers
		if r.Key == nil {
			t.Fatalf("dead-lettered record lost its key: %+v", r)
		}
	}
	want := map[string]map[string]string{
		"fail-me": {"weir-dlq-reason": "max_attempts_exceeded", "weir-source-topic": "work", "weir-source-partition": "0",
			"weir-source-offset": "0", "weir-attempts": "3", "weir-last-error": "boom", "x-trace": "t1"},
		"crash-me": {"weir-dlq-reason": "max_attempts_exceeded", "weir-source-topic": "work", "weir-source-partition": "1",
			"weir-source-offset": "0", "weir-attempts": "3", "weir-last-error": "visibility timeout expired"},
	}
	for v, hs := range want {
		for k, want := range hs {
			if got := byValue[v][k]; got != want {
				t.Fatalf("%s: header %s = %q, want %q (all: %v)", v, k, got, want, byValue[v])
			}
		}
	}
	tu.Eventually(t, 10*time.Second, "dead-letter counts", func() bool {
		st := describeSub(t, u, "work", "w").Stats
		return st.DeadLettered == 2 && st.DeadPending == 0 && st.Backlog == 0
	})

	// Redrive: back to the topic, without the dead-letter headers.
	r := tu.Do(t, "POST", u+"/v1/topics/work-dlq/redrive", map[string]any{"to": "work"})
	if r.Status != 200 || string(r.Body) != "{\"redriven\":2}\n" {
		t.Fatalf("redrive: %d %s", r.Status, r.Body)
	}
	if r := tu.Do(t, "POST", u+"/v1/topics/work-dlq/redrive", map[string]any{"to": "work"}); string(r.Body) != "{\"redriven\":0}\n" {
		t.Fatalf("second redrive: %d %s", r.Status, r.Body)
	}
	var back []qmsg
	tu.Eventually(t, 10*time.Second, "redriven messages", func() bool {
		back = append(back, receive(t, u, "work", "w", map[string]any{"wait_ms": 200})...)
		return len(back) >= 2
	})
	for _, m := range back {
		if m.Attempt != 1 || m.Headers["weir-dlq-reason"] != "" || m.Headers["weir-attempts"] != "" {
			t.Fatalf("redriven message: %+v", m)
		}
		if m.Value == "fail-me" && m.Headers["x-trace"] != "t1" {
			t.Fatalf("redrive lost the original headers: %+v", m)
		}
	}
	receipts(t, u, "work", "w", "ack", receiptsOf(back), nil)
}

// With ordering "key", a key's messages are leased one at a time, in
// offset order, while 8 consumers work on different keys in parallel.
func TestQueueKeyOrdering(t *testing.T) {
	s := startNode(t, t.TempDir(), fastQueues)
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "ord", 2)
	createSub(t, u, "ord", map[string]any{"name": "k", "ordering": "key", "visibility_timeout_ms": 10000,
		"backoff": map[string]any{"initial_ms": 5, "max_ms": 5, "multiplier": 1}})
	const keys, perKey, consumers = 16, 25, 8
	for i := 0; i < perKey; i += 5 {
		var recs []map[string]any
		for k := 0; k < keys; k++ {
			for j := i; j < i+5; j++ {
				recs = append(recs, map[string]any{"key": fmt.Sprintf("k%02d", k), "value": fmt.Sprintf("k%02d/%03d", k, j)})
			}
		}
		produceJSON(t, u, "ord", recs...)
	}
	var mu sync.Mutex
	holder := map[string]int{}
	next := map[string]int{} // per key: the sequence number that must come next
	maxParallel := 0
	var done atomic.Int64
	deadline := time.Now().Add(120 * time.Second)
	var wg sync.WaitGroup
	for c := 0; c < consumers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Load() < keys*perKey && time.Now().Before(deadline) && !t.Failed() {
				ms, err := tryReceive(u, "ord", "k", map[string]any{"max_records": 4, "wait_ms": 300})
				if err != nil {
					t.Error(err)
					return
				}
				var ack, nack []string
				mu.Lock()
				for _, m := range ms {
					k := *m.Key
					seq, _ := strconv.Atoi(m.Value[4:])
					if h, ok := holder[k]; ok {
						t.Errorf("key %s leased to consumer %d while consumer %d holds it", k, c, h)
					}
					if seq != next[k] {
						t.Errorf("key %s: got %s, want sequence %d", k, m.Value, next[k])
					}
					holder[k] = c
				}
				maxParallel = max(maxParallel, len(holder))
				// Release before answering: the answer is what lets the
				// broker hand out the key's next message.
				for _, m := range ms {
					k := *m.Key
					delete(holder, k)
					h := fnv.New32a()
					h.Write([]byte(m.Value))
					if m.Attempt == 1 && h.Sum32()%5 == 0 {
						nack = append(nack, m.Receipt)
					} else {
						next[k]++
						ack = append(ack, m.Receipt)
					}
				}
				mu.Unlock()
				if len(nack) > 0 {
					if _, err := tryReceipts(u, "ord", "k", "nack", map[string]any{"receipts": nack}); err != nil {
						t.Error(err)
						return
					}
				}
				if len(ack) > 0 {
					if _, err := tryReceipts(u, "ord", "k", "ack", map[string]any{"receipts": ack}); err != nil {
						t.Error(err)
						return
					}
					done.Add(int64(len(ack)))
				}
			}
		}()
	}
	wg.Wait()
	if done.Load() != keys*perKey {
		t.Fatalf("%d of %d messages acked", done.Load(), keys*perKey)
	}
	for k, n := range next {
		if n != perKey {
			t.Fatalf("key %s: %d in order, want %d", k, n, perKey)
		}
	}
	if maxParallel < 2 {
		t.Fatalf("keys were never processed in parallel (max %d at once)", maxParallel)
	}
	t.Logf("up to %d keys in flight at once", maxParallel)
}

// Delayed messages reach no subscription before they are due, are seen at
// their offset by log consumers, and survive a restart.
func TestQueueDelayedDelivery(t *testing.T) {
	dir := t.TempDir()
	s := startNode(t, dir, fastQueues)
	u := s.URL()
	createTopic(t, u, "later", 1)
	createSub(t, u, "later", map[string]any{"name": "s"})
	produceJSON(t, u, "later",
		map[string]any{"value": "now"},
		map[string]any{"value": "soon", "delay_ms": 5000},
		map[string]any{"value": "days", "delay_ms": 3 * 24 * 3600 * 1000},
		map[string]any{"value": "past", "deliver_at": 1000})
	got := receive(t, u, "later", "s", map[string]any{"max_records": 10})
	if len(got) != 2 || got[0].Value != "now" || got[1].Value != "past" {
		t.Fatalf("due messages: %+v", got)
	}
	receipts(t, u, "later", "s", "ack", receiptsOf(got), nil)
	var f fetchResp
	tu.Do(t, "GET", u+"/v1/topics/later/partitions/0/records?offset=0", nil).JSON(t, &f)
	if len(f.Records) != 4 || f.Records[1].Value != "soon" || f.Records[1].Headers["weir-deliver-at"] == "" {
		t.Fatalf("log consumers must see delayed records at their offsets: %+v", f.Records)
	}
	due, _ := strconv.ParseInt(f.Records[1].Headers["weir-deliver-at"], 10, 64)
	if st := describeSub(t, u, "later", "s").Stats; st.Delayed != 2 {
		t.Fatalf("stats before restart: %+v", st)
	}
	stop(t, s)

	s = startNode(t, dir, fastQueues)
	defer stop(t, s)
	u = s.URL()
	waitServing(t, u, "later")
	got = receive(t, u, "later", "s", map[string]any{"wait_ms": 15000})
	if len(got) != 1 || got[0].Value != "soon" {
		t.Fatalf("after restart: %+v", got)
	}
	if now := time.Now().UnixMilli(); now < due {
		t.Fatalf("delivered at %d, due at %d", now, due)
	}
	receipts(t, u, "later", "s", "ack", receiptsOf(got), nil)
	if got := receive(t, u, "later", "s", map[string]any{"wait_ms": 300}); len(got) != 0 {
		t.Fatalf("a message due in 3 days was delivered: %+v", got)
	}
	if st := describeSub(t, u, "later", "s").Stats; st.Delayed != 1 || st.Backlog != 1 {
		t.Fatalf("stats after restart: %+v", st)
	}
}

func TestQueueBadInputs(t *testing.T) {
	s := startNode(t, t.TempDir(), fastQueues)
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "q", 1)
	createSub(t, u, "q", map[string]any{"name": "s"})
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"sub on missing topic", "POST", "/v1/topics/nope/subscriptions", map[string]any{"name": "s"}, 404, "topic_not_found"},
		{"bad sub name", "POST", "/v1/topics/q/subscriptions", map[string]any{"name": "a/b"}, 400, "bad_request"},
		{"sub exists", "POST", "/v1/topics/q/subscriptions", map[string]any{"name": "s"}, 409, "subscription_exists"},
		{"bad ordering", "POST", "/v1/topics/q/subscriptions", map[string]any{"name": "x", "ordering": "fifo"}, 400, "bad_request"},
		{"attempts without dlq", "POST", "/v1/topics/q/subscriptions", map[string]any{"name": "x", "max_attempts": 3}, 400, "bad_request"},
		{"dlq is the topic", "POST", "/v1/topics/q/subscriptions", map[string]any{"name": "x", "dead_letter_topic": "q"}, 400, "bad_request"},
		{"bad backoff", "POST", "/v1/topics/q/subscriptions", map[string]any{"name": "x", "backoff": map[string]any{"multiplier": 0.5}}, 400, "bad_request"},
		{"negative visibility", "POST", "/v1/topics/q/subscriptions", map[string]any{"name": "x", "visibility_timeout_ms": -1}, 400, "bad_request"},
		{"unknown field", "POST", "/v1/topics/q/subscriptions", map[string]any{"name": "x", "visibility": 5}, 400, "bad_request"},
		{"describe missing", "GET", "/v1/topics/q/subscriptions/nope", nil, 404, "subscription_not_found"},
		{"delete missing", "DELETE", "/v1/topics/q/subscriptions/nope", nil, 404, "subscription_not_found"},
		{"receive missing sub", "POST", "/v1/topics/q/subscriptions/nope/receive", map[string]any{}, 404, "subscription_not_found"},
		{"receive too many", "POST", "/v1/topics/q/subscriptions/s/receive", map[string]any{"max_records": 100000}, 400, "bad_request"},
		{"receive negative wait", "POST", "/v1/topics/q/subscriptions/s/receive", map[string]any{"wait_ms": -1}, 400, "bad_request"},
		{"receive bad encoding", "POST", "/v1/topics/q/subscriptions/s/receive", map[string]any{"encoding": "hex"}, 400, "bad_request"},
		{"ack no receipts", "POST", "/v1/topics/q/subscriptions/s/ack", map[string]any{"receipts": []string{}}, 400, "bad_request"},
		{"ack with delay", "POST", "/v1/topics/q/subscriptions/s/ack", map[string]any{"receipts": []string{"x"}, "delay_ms": 5}, 400, "bad_request"},
		{"nack negative delay", "POST", "/v1/topics/q/subscriptions/s/nack", map[string]any{"receipts": []string{"x"}, "delay_ms": -5}, 400, "bad_request"},
		{"extend without timeout", "POST", "/v1/topics/q/subscriptions/s/extend", map[string]any{"receipts": []string{"x"}}, 400, "bad_request"},
		{"unknown sub op", "POST", "/v1/topics/q/subscriptions/s/peek", map[string]any{}, 404, "not_found"},
		{"wrong method", "PUT", "/v1/topics/q/subscriptions/s", nil, 405, "method_not_allowed"},
		{"delay and deliver_at", "POST", "/v1/topics/q/records", map[string]any{"records": []any{map[string]any{"value": "x", "delay_ms": 5, "deliver_at": 5}}}, 400, "bad_request"},
		{"negative delay", "POST", "/v1/topics/q/records", map[string]any{"records": []any{map[string]any{"value": "x", "delay_ms": -5}}}, 400, "bad_request"},
		{"redrive missing target", "POST", "/v1/topics/q/redrive", map[string]any{"to": "nope"}, 404, "topic_not_found"},
		{"redrive no target", "POST", "/v1/topics/q/redrive", map[string]any{}, 400, "bad_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tu.Do(t, c.method, u+c.path, c.body)
			if r.Status != c.status || r.ErrorCode() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
		})
	}
	// Lists, deletion, and a re-created subscription starting afresh.
	var list struct {
		Subscriptions []struct {
			Name string `json:"name"`
		} `json:"subscriptions"`
	}
	tu.Do(t, "GET", u+"/v1/topics/q/subscriptions", nil).JSON(t, &list)
	if len(list.Subscriptions) != 1 || list.Subscriptions[0].Name != "s" {
		t.Fatalf("list: %+v", list)
	}
	produceJSON(t, u, "q", map[string]any{"value": "one"})
	if got := receive(t, u, "q", "s", nil); len(got) != 1 {
		t.Fatalf("receive: %+v", got)
	}
	if r := tu.Do(t, "DELETE", subURL(u, "q", "s"), nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	createSub(t, u, "q", map[string]any{"name": "s", "start": "latest"})
	if got := receive(t, u, "q", "s", nil); len(got) != 0 {
		t.Fatalf("a subscription created at latest got an old message: %+v", got)
	}
	produceJSON(t, u, "q", map[string]any{"value": "two"})
	if got := receive(t, u, "q", "s", nil); len(got) != 1 || got[0].Value != "two" || got[0].Attempt != 1 {
		t.Fatalf("after re-creation: %+v", got)
	}
	// A partition added later is delivered from its start, "latest" or not.
	if r := tu.Do(t, "POST", u+"/v1/topics/q/partitions", map[string]any{"partitions": 2}); r.Status != 200 {
		t.Fatalf("grow: %d %s", r.Status, r.Body)
	}
	produceJSON(t, u, "q", map[string]any{"value": "three", "partition": 1})
	if got := receive(t, u, "q", "s", map[string]any{"wait_ms": 30000}); len(got) != 1 || got[0].Value != "three" {
		t.Fatalf("from the added partition: %+v", got)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// waitServing waits until a restarted node serves reads of topic's
// partition 0 (a replica answers 503 until it has caught up).
func waitServing(t *testing.T, u, topic string) {
	t.Helper()
	tu.Eventually(t, 30*time.Second, "reads served after the restart", func() bool {
		r, err := tu.TryDo("GET", u+"/v1/topics/"+topic+"/partitions/0/records?offset=earliest&max_records=1", nil)
		return err == nil && r.Status == 200
	})
}
