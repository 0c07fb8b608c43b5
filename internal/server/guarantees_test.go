package server

import (
	"fmt"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// The tests of docs/guarantees.md, one per delivery guarantee.

// At-most-once: acks=none answers before the record is committed, and a
// receive with auto_ack acknowledges as it leases, so a consumer that
// crashes after receiving never sees the message again.
func TestGuaranteeAtMostOnce(t *testing.T) {
	s := startNode(t, t.TempDir(), fastQueues)
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "amo", 1)
	createSub(t, u, "amo", map[string]any{"name": "s", "visibility_timeout_ms": 200,
		"backoff": map[string]any{"initial_ms": 0, "max_ms": 0, "multiplier": 1}})
	r := tu.Do(t, "POST", u+"/v1/topics/amo/records?acks=none", map[string]any{"records": []any{map[string]any{"value": "fire-and-forget"}}})
	if r.Status != 202 {
		t.Fatalf("acks=none: %d %s", r.Status, r.Body)
	}
	var got []qmsg
	tu.Eventually(t, 10*time.Second, "the acks=none record", func() bool {
		got = receive(t, u, "amo", "s", map[string]any{"auto_ack": true, "wait_ms": 200})
		return len(got) > 0
	})
	if got[0].Value != "fire-and-forget" {
		t.Fatalf("received %+v", got)
	}
	// The consumer "crashes" without acking: past the visibility timeout
	// the message is still not delivered again.
	if again := receive(t, u, "amo", "s", map[string]any{"wait_ms": 800}); len(again) != 0 {
		t.Fatalf("an auto-acked message was delivered again: %+v", again)
	}
	if res := receipts(t, u, "amo", "s", "ack", receiptsOf(got), nil); res[0].Status != "ok" {
		t.Fatalf("acking an auto-acked message: %+v", res[0])
	}
	if st := describeSub(t, u, "amo", "s").Stats; st.Delivered != 1 || st.Acked != 1 || st.Backlog != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// At-least-once: a consumer that crashes before acking gets its message
// delivered again (to another consumer) after the lease; one that acks
// after processing never sees it again.
func TestGuaranteeAtLeastOnce(t *testing.T) {
	s := startNode(t, t.TempDir(), fastQueues)
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "alo", 1)
	createSub(t, u, "alo", map[string]any{"name": "s", "visibility_timeout_ms": 2000,
		"backoff": map[string]any{"initial_ms": 0, "max_ms": 0, "multiplier": 1}})
	produceJSON(t, u, "alo", map[string]any{"value": "job-1"}, map[string]any{"value": "job-2"})
	crashed := receive(t, u, "alo", "s", map[string]any{"max_records": 1})
	done := receive(t, u, "alo", "s", map[string]any{"max_records": 1})
	if len(crashed) != 1 || len(done) != 1 || crashed[0].Value != "job-1" || done[0].Value != "job-2" {
		t.Fatalf("receives: %+v %+v", crashed, done)
	}
	// done processes and acks; crashed dies without a word.
	receipts(t, u, "alo", "s", "ack", receiptsOf(done), nil)
	again := receive(t, u, "alo", "s", map[string]any{"wait_ms": 5000})
	if len(again) != 1 || again[0].Value != "job-1" || again[0].Attempt != 2 {
		t.Fatalf("redelivery after the crash: %+v", again)
	}
	receipts(t, u, "alo", "s", "ack", receiptsOf(again), nil)
	if more := receive(t, u, "alo", "s", map[string]any{"wait_ms": 800}); len(more) != 0 {
		t.Fatalf("acked messages delivered again: %+v", more)
	}
}

// Exactly-once for a consume-transform-produce consumer: results are
// produced with an idempotent producer whose sequence is the input offset
// (the position is committed with the results, in the output partition's
// producer state), so re-processing after a crash, even across a broker
// restart, adds no duplicate and leaves no gap.
func TestGuaranteeExactlyOnceConsumeTransformProduce(t *testing.T) {
	dir := t.TempDir()
	s := startNode(t, dir)
	u := s.URL()
	createTopic(t, u, "in", 1)
	createTopic(t, u, "out", 1)
	for i := 0; i < 50; i += 10 {
		var recs []map[string]any
		for j := i; j < i+10; j++ {
			recs = append(recs, map[string]any{"value": fmt.Sprint(j)})
		}
		produceJSON(t, u, "in", recs...)
	}
	// process reads from the group's committed offset up to stop, writes
	// one result per input, and commits the offset up to commitUpTo.
	process := func(u string, stop, commitUpTo int64) (dups int) {
		var g struct {
			Offsets []struct {
				Offset int64 `json:"offset"`
			} `json:"offsets"`
		}
		tu.Do(t, "GET", u+"/v1/groups/xf/offsets?topic=in", nil).JSON(t, &g)
		from := int64(0)
		if len(g.Offsets) > 0 {
			from = g.Offsets[0].Offset
		}
		var f fetchResp
		tu.Do(t, "GET", fmt.Sprintf("%s/v1/topics/in/partitions/0/records?offset=%d&max_records=%d", u, from, stop-from), nil).JSON(t, &f)
		for _, rec := range f.Records {
			r := tu.Do(t, "POST", u+"/v1/topics/out/records", map[string]any{
				"producer_id": "xf-in-0", "sequence": rec.Offset,
				"records": []any{map[string]any{"value": "result-" + rec.Value}}})
			switch {
			case r.Status == 200:
				var o offsetsResp
				r.JSON(t, &o)
				if o.Duplicate {
					dups++ // a retry of one of the last 5 batches
				}
			case r.Status == 409 && r.ErrorCode() == "out_of_order_sequence":
				// Older than the last 5 batches: expected_sequence says
				// the partition already holds it.
				var e struct {
					Expected int64 `json:"expected_sequence"`
				}
				r.JSON(t, &e)
				if e.Expected <= rec.Offset {
					t.Fatalf("a gap: %s", r.Body)
				}
				dups++
			default:
				t.Fatalf("produce result: %d %s", r.Status, r.Body)
			}
			if rec.Offset+1 <= commitUpTo {
				tu.Do(t, "POST", u+"/v1/groups/xf/offsets", map[string]any{"offsets": []any{
					map[string]any{"topic": "in", "partition": 0, "offset": rec.Offset + 1}}})
			}
		}
		return dups
	}
	// Process 0..29 but "crash" with only 0..19 committed.
	if d := process(u, 30, 20); d != 0 {
		t.Fatalf("%d duplicates on the first pass", d)
	}
	stop(t, s)
	s = startNode(t, dir)
	defer stop(t, s)
	u = s.URL()
	waitServing(t, u, "in")
	// The restarted consumer redoes 20..29 (all duplicates) and goes on.
	if d := process(u, 50, 50); d != 10 {
		t.Fatalf("%d duplicates on the replay, want 10", d)
	}
	var f fetchResp
	tu.Do(t, "GET", u+"/v1/topics/out/partitions/0/records?offset=0&max_records=1000", nil).JSON(t, &f)
	if len(f.Records) != 50 {
		t.Fatalf("%d results, want exactly 50", len(f.Records))
	}
	for i, r := range f.Records {
		if r.Value != fmt.Sprintf("result-%d", i) {
			t.Fatalf("result %d is %q", i, r.Value)
		}
	}
}
