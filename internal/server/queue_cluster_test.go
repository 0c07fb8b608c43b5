package server

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// Leases, acks and delivery counts live in the partition's replicated
// state: when the partition's leader goes away, the new leader (and every
// other node) goes on with them. Receipts work through any node.
func TestQueueSurvivesLeaderChange(t *testing.T) {
	c := startCluster(t, 3, fastQueues)
	u := func(id uint64) string { return c.nodes[id].URL() }
	if r := tu.Do(t, "POST", u(1)+"/v1/topics", map[string]any{"name": "lc", "partitions": 1, "replication_factor": 3}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 60*time.Second, "settled", func() bool { return tu.Settled(tu.ClusterStatus(t, u(1))) })
	leader := tu.LeaderOf(t, u(1), "lc", 0)
	if leader == 0 {
		t.Fatal("no leader")
	}
	other := leader%3 + 1 // a node that stays
	createSub(t, u(leader), "lc", map[string]any{"name": "s", "visibility_timeout_ms": 20000,
		"backoff": map[string]any{"initial_ms": 50, "max_ms": 50, "multiplier": 1}})
	var recs []map[string]any
	for i := 0; i < 20; i++ {
		recs = append(recs, map[string]any{"value": fmt.Sprint(i)})
	}
	recs = append(recs, map[string]any{"value": "later", "delay_ms": 4000})
	produceJSON(t, u(leader), "lc", recs...)

	// Through the leader: lease 5, ack 2 of them.
	leased := receive(t, u(leader), "lc", "s", map[string]any{"max_records": 5})
	if len(leased) != 5 {
		t.Fatalf("leased %+v", leased)
	}
	for _, r := range receipts(t, u(leader), "lc", "s", "ack", receiptsOf(leased[:2]), nil) {
		if r.Status != "ok" {
			t.Fatalf("ack: %+v", r)
		}
	}
	held := leased[2:]

	stop(t, c.nodes[leader])
	delete(c.nodes, leader)
	tu.Eventually(t, 60*time.Second, "a new leader", func() bool {
		l := tu.LeaderOf(t, u(other), "lc", 0)
		return l != 0 && l != leader
	})

	// Through a surviving node: the 15 never delivered come, the 3 still
	// leased do not (their leases hold), the 2 acked never do; the delayed
	// one comes when due.
	got := map[string]qmsg{}
	var later qmsg
	var laterAt int64
	collect := func(ms []qmsg) {
		now := time.Now().UnixMilli()
		for _, m := range ms {
			for _, l := range leased {
				if m.Value == l.Value && now < l.LeaseExpiresAt {
					t.Fatalf("message %s leased before the leader change was handed out again: %+v", m.Value, m)
				}
			}
			if m.Value == "later" {
				later, laterAt = m, now
				continue
			}
			got[m.Value] = m
		}
	}
	tu.Eventually(t, 30*time.Second, "the 15 fresh messages", func() bool {
		ms, err := tryReceive(u(other), "lc", "s", map[string]any{"max_records": 20, "wait_ms": 500})
		if err != nil {
			t.Logf("receive during failover: %v", err)
			return false
		}
		collect(ms)
		return len(got) >= 15
	})
	for _, m := range got {
		if m.Attempt != 1 {
			t.Fatalf("fresh message with attempt %d: %+v", m.Attempt, m)
		}
	}
	for _, r := range receipts(t, u(other), "lc", "s", "ack", receiptsOf(mapValues(got)), nil) {
		if r.Status != "ok" {
			t.Fatalf("ack: %+v", r)
		}
	}
	// Receipts from before the change work through another node: ack one,
	// nack two, which come back at once as attempt 2.
	if res := receipts(t, u(other), "lc", "s", "ack", receiptsOf(held[:1]), nil); res[0].Status != "ok" {
		t.Fatalf("ack of a pre-failover receipt via node %d: %+v", other, res[0])
	}
	for _, r := range receipts(t, u(other), "lc", "s", "nack", receiptsOf(held[1:]), map[string]any{"delay_ms": 0}) {
		if r.Status != "ok" {
			t.Fatalf("nack of a pre-failover receipt: %+v", r)
		}
	}
	var back []qmsg
	tu.Eventually(t, 30*time.Second, "the nacked messages and the delayed one", func() bool {
		ms, err := tryReceive(u(other), "lc", "s", map[string]any{"wait_ms": 1000})
		if err == nil {
			for _, m := range ms {
				if m.Value == "later" {
					later, laterAt = m, time.Now().UnixMilli()
				} else {
					back = append(back, m)
				}
			}
		}
		return len(back) >= 2 && later.Receipt != ""
	})
	for _, m := range back {
		if m.Attempt != 2 || (m.Value != held[1].Value && m.Value != held[2].Value) {
			t.Fatalf("redelivered %+v, want %s and %s as attempt 2", m, held[1].Value, held[2].Value)
		}
	}
	due, _ := strconv.ParseInt(later.Headers["weir-deliver-at"], 10, 64)
	if due == 0 || laterAt < due || later.Attempt != 1 {
		t.Fatalf("delayed message at %d (due %d): %+v", laterAt, due, later)
	}
	for _, r := range receipts(t, u(other), "lc", "s", "ack", receiptsOf(append(back, later)), nil) {
		if r.Status != "ok" {
			t.Fatalf("ack: %+v", r)
		}
	}
	// Statistics are this node's replica's view: it may apply the last
	// ack a moment after the leader answered.
	var st subStats
	tu.Eventually(t, 10*time.Second, "the counts", func() bool {
		st = describeSub(t, u(other), "lc", "s")
		return st.Stats.Acked == 21
	})
	if s := st.Stats; s.Delivered != 23 || s.Nacked != 2 || s.Backlog != 0 {
		t.Fatalf("counts after the leader change: %+v", s)
	}
}

func mapValues(m map[string]qmsg) []qmsg {
	out := make([]qmsg, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
