package raftlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	tu "github.com/weir-broker/weir/internal/testutil"
)

func startHost(t *testing.T, dir, raftAddr string) *Host {
	t.Helper()
	h, err := New(Config{NodeID: 1, DataDir: dir, RaftAddr: raftAddr, HTTPAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, "metadata ready", h.Ready)
	return h
}

func TestStateTxnAtomicAndDurable(t *testing.T) {
	dir, addr := t.TempDir(), tu.FreeAddr(t)
	h := startHost(t, dir, addr)
	ctx, pl := onePartition(t, h, "s", 30*time.Second)
	// A txn with records and state.
	res, err := pl.ApplyTxn(ctx, &core.StateTxn{
		Conds:  []core.StateCond{{Key: "pos", Absent: true}},
		Ops:    []core.StateOp{{Key: "pos", Value: []byte("1")}, {Key: "count/a", Value: []byte("7")}},
		Append: &core.AppendBatch{Timestamp: 5, Records: []core.Record{{Value: []byte("out-1")}, {Value: []byte("out-2")}}},
	})
	if err != nil || !res.Applied || res.BaseOffset != 0 {
		t.Fatalf("txn: %+v %v", res, err)
	}
	// A failing condition changes nothing.
	res, err = pl.ApplyTxn(ctx, &core.StateTxn{
		Conds:  []core.StateCond{{Key: "count/a", Value: []byte("7")}, {Key: "pos", Value: []byte("0")}},
		Ops:    []core.StateOp{{Key: "pos", Value: []byte("2")}},
		Append: &core.AppendBatch{Timestamp: 6, Records: []core.Record{{Value: []byte("never")}}},
	})
	if err != nil || res.Applied || res.FailedCond != 1 {
		t.Fatalf("failed txn: %+v %v", res, err)
	}
	// Plain appends interleave with txns.
	if _, err := pl.Append(ctx, &core.AppendBatch{Timestamp: 7, Records: []core.Record{{Value: []byte("plain")}}}); err != nil {
		t.Fatal(err)
	}
	res, err = pl.ApplyTxn(ctx, &core.StateTxn{Ops: []core.StateOp{{Key: "count/a", Delete: true}, {Key: "count/b", Value: []byte("1")}}})
	if err != nil || !res.Applied {
		t.Fatalf("ops-only txn: %+v %v", res, err)
	}
	check := func(pl core.PartitionLog) {
		t.Helper()
		recs, err := pl.Read(ctx, 0, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		for _, r := range recs {
			vals = append(vals, string(r.Value))
		}
		if len(vals) != 3 || vals[0] != "out-1" || vals[1] != "out-2" || vals[2] != "plain" {
			t.Fatalf("records %v", vals)
		}
		if v, ok := pl.StateGet("pos"); !ok || string(v) != "1" {
			t.Fatalf("pos = %q %v", v, ok)
		}
		if _, ok := pl.StateGet("count/a"); ok {
			t.Fatal("count/a survived its delete")
		}
		var keys []string
		pl.StateScan("count/", func(k string, v []byte) bool { keys = append(keys, k+"="+string(v)); return true })
		if len(keys) != 1 || keys[0] != "count/b=1" {
			t.Fatalf("scan %v", keys)
		}
	}
	check(pl)
	h.Close()

	// Restart: state and records come back (replayed from the segment tail).
	h = startHost(t, dir, addr)
	defer h.Close()
	tu.Eventually(t, 20*time.Second, "partition back", func() bool {
		pl, err = h.Partition("s", 0)
		return err == nil && pl.HighWatermark() == 3
	})
	check(pl)
}

func TestCatalogCompareAndSet(t *testing.T) {
	h := startHost(t, t.TempDir(), tu.FreeAddr(t))
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch := h.CatalogChanged()
	ok, err := h.CatalogPut(ctx, "groups", "g1", []byte(`{"gen": 1}`), core.CatalogCond{IfAbsent: true})
	if err != nil || !ok {
		t.Fatalf("put: %v %v", ok, err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("CatalogChanged not closed by a put")
	}
	if ok, _ := h.CatalogPut(ctx, "groups", "g1", []byte(`{"gen":2}`), core.CatalogCond{IfAbsent: true}); ok {
		t.Fatal("IfAbsent put over an existing key succeeded")
	}
	if ok, _ := h.CatalogPut(ctx, "groups", "g1", []byte(`{"gen":2}`), core.CatalogCond{IfEqual: []byte(`{"gen":5}`)}); ok {
		t.Fatal("IfEqual put with a stale value succeeded")
	}
	if ok, _ := h.CatalogPut(ctx, "groups", "g1", []byte(`{"gen":2}`), core.CatalogCond{IfEqual: []byte(`{"gen": 1}`)}); !ok {
		t.Fatal("IfEqual put with the current value failed")
	}
	if v, _ := h.CatalogGet("groups", "g1"); string(v) != `{"gen":2}` {
		t.Fatalf("get %s", v)
	}
	if _, err := h.CatalogPut(ctx, "groups", "bad", []byte(`not json`), core.CatalogCond{}); err == nil {
		t.Fatal("non-JSON value accepted")
	}
	if ok, _ := h.CatalogDelete(ctx, "groups", "g1", core.CatalogCond{}); !ok {
		t.Fatal("delete failed")
	}
	if len(h.CatalogList("groups")) != 0 {
		t.Fatal("list not empty after delete")
	}
}

// TestStateMachinesRefuseEntriesTheyCannotApply: entries the proposers
// refuse (an append without records, a topic without replicas) may still
// reach the log (an older node, a peer); the state machines must answer
// them, not stop the node at every replay.
func TestStateMachinesRefuseEntriesTheyCannotApply(t *testing.T) {
	h := startHost(t, t.TempDir(), tu.FreeAddr(t))
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := h.proposeMeta(ctx, &metaCmd{Op: "create_topic", Topic: &core.TopicConfig{Name: "norf", Partitions: 2}})
	if err != nil || res.Value != metaInvalid {
		t.Fatalf("create_topic without replicas: %+v %v, want metaInvalid", res, err)
	}
	if _, err := h.CreateTopic(ctx, core.TopicConfig{Name: "s", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	pm, err := h.partitionMeta("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err = h.propose(ctx, pm.ShardID, encodeAppend(nil, "", 0, 1, 1, 0, core.AppendRecords(nil, nil)))
	if err != nil || len(res.Data) == 0 || res.Data[0] != resultCorrupt {
		t.Fatalf("an append without records: %+v %v, want resultCorrupt", res, err)
	}
	pl, _ := h.Partition("s", 0)
	if r, err := pl.Append(ctx, &core.AppendBatch{Timestamp: 1, Records: []core.Record{{Value: []byte("a")}}}); err != nil || r.BaseOffset != 0 {
		t.Fatalf("append after: %+v %v", r, err)
	}
}

// Appends queued with ProposeAppend from one goroutine, none waited for
// before the next is queued, are in the log in the order queued, with the
// offsets each wait reports; an idempotent producer's sequences, checked
// per entry by the state machine, accept them in that order.
func TestProposeAppendKeepsTheOrder(t *testing.T) {
	h := startHost(t, t.TempDir(), tu.FreeAddr(t))
	ctx, pl := onePartition(t, h, "q", 60*time.Second)
	tu.Eventually(t, 20*time.Second, "a leader for q/0", pl.IsLeader)
	ap := pl.(core.AppendProposer)
	const n = 200
	waits := make([]func(context.Context) (core.AppendResult, error), n)
	for i := range n {
		b := &core.AppendBatch{ProducerID: "p", Sequence: int64(2 * i), Records: []core.Record{
			{Value: fmt.Appendf(nil, "%d-a", i)}, {Value: fmt.Appendf(nil, "%d-b", i)}}}
		var err error
		if waits[i], err = ap.ProposeAppend(b); err != nil {
			t.Fatalf("queue %d: %v", i, err)
		}
	}
	for i, w := range waits {
		res, err := w(ctx)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if res.BaseOffset != int64(2*i) || res.Duplicate {
			t.Fatalf("append %d answered %+v, want base offset %d", i, res, 2*i)
		}
	}
	recs, err := pl.Read(ctx, 0, 2*n, 1<<24)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2*n {
		t.Fatalf("read %d records, want %d", len(recs), 2*n)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("%d-%c", i/2, "ab"[i%2]); string(r.Value) != want {
			t.Fatalf("offset %d holds %q, want %q", i, r.Value, want)
		}
	}
}

// onePartition creates topic name of one partition (replication factor 1)
// on st and returns its log, with a context that ends after d.
func onePartition(t *testing.T, st core.Store, name string, d time.Duration) (context.Context, core.PartitionLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	if _, err := st.CreateTopic(ctx, core.TopicConfig{Name: name, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	pl, err := st.Partition(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, pl
}
