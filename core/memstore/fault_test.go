package memstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
)

func newLog(t *testing.T) (*memstore.Store, *memstore.Partition) {
	t.Helper()
	st := memstore.New(memstore.Config{})
	if _, err := st.CreateTopic(context.Background(), core.TopicConfig{Name: "t", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	l, err := st.Log("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	return st, l
}

func one(v string) *core.AppendBatch {
	return &core.AppendBatch{Timestamp: 1, Records: []core.Record{{Value: []byte(v)}}}
}

func TestFaultsFailTheirWritesInOrder(t *testing.T) {
	ctx := context.Background()
	_, l := newLog(t)
	boom := errors.New("disk full")
	l.Inject(memstore.Fault{Ops: memstore.OpAppend, Count: 2})
	l.Inject(memstore.Fault{Ops: memstore.OpAppend, Err: boom})
	for i, want := range []error{core.ErrUnavailable, core.ErrUnavailable, boom, nil} {
		if _, err := l.Append(ctx, one("a")); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("append %d: %v, want %v", i, err, want)
		}
	}
	if l.HighWatermark() != 1 {
		t.Fatalf("high watermark %d: only the last append applied", l.HighWatermark())
	}
	// A fault for other writes leaves appends alone.
	l.Inject(memstore.Fault{Ops: memstore.OpTrim})
	if _, err := l.Append(ctx, one("b")); err != nil {
		t.Fatal(err)
	}
	if err := l.TrimTo(ctx, 1); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("trim: %v", err)
	}
	if got := l.Trims(); len(got) != 0 {
		t.Fatalf("a failed trim was recorded: %v", got)
	}
}

func TestAppliedFaultIsAnUnknownOutcome(t *testing.T) {
	ctx := context.Background()
	_, l := newLog(t)
	l.Inject(memstore.Fault{Applied: true})
	b := &core.AppendBatch{ProducerID: "p", Sequence: 0, Timestamp: 1, Records: []core.Record{{Value: []byte("a")}}}
	if _, err := l.Append(ctx, b); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("append: %v", err)
	}
	res, err := l.Append(ctx, b) // the producer retries
	if err != nil || !res.Duplicate || res.BaseOffset != 0 || l.HighWatermark() != 1 {
		t.Fatalf("retry: %+v %v, high watermark %d; want the original offset as a duplicate", res, err, l.HighWatermark())
	}
	l.Inject(memstore.Fault{Ops: memstore.OpTxn, Applied: true})
	wait, err := l.ProposeTxn(&core.StateTxn{Ops: []core.StateOp{{Key: "k", Value: []byte("v")}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(ctx); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("wait: %v", err)
	}
	if v, ok := l.StateGet("k"); !ok || string(v) != "v" {
		t.Fatalf("the transaction did not apply: %q %v", v, ok)
	}
}

func TestLeadershipAndProposeTxn(t *testing.T) {
	st, l := newLog(t)
	if pi, _ := st.PartitionInfo("t", 0); pi.Leader != 1 || !l.IsLeader() {
		t.Fatalf("a new partition leads: %+v", pi)
	}
	l.SetLeader(false)
	if pi, _ := st.PartitionInfo("t", 0); pi.Leader != 0 || l.IsLeader() {
		t.Fatalf("after SetLeader(false): %+v", pi)
	}
	if _, err := l.ProposeTxn(&core.StateTxn{}); !errors.Is(err, core.ErrNotLeader) {
		t.Fatalf("ProposeTxn on a follower: %v, want ErrNotLeader", err)
	}
	if _, err := l.Append(context.Background(), one("a")); err != nil {
		t.Fatalf("a write through a follower's handle reaches the leader: %v", err)
	}
	l.Inject(memstore.Fault{Ops: memstore.OpTxn})
	l.SetLeader(true)
	if _, err := l.ProposeTxn(&core.StateTxn{}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("ProposeTxn with a fault armed: %v", err)
	}
}

func TestStoreFaults(t *testing.T) {
	ctx := context.Background()
	st, _ := newLog(t)
	st.Inject(memstore.Fault{Ops: memstore.OpSync})
	if err := st.CatalogSync(ctx); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("sync: %v", err)
	}
	if err := st.CatalogSync(ctx); err != nil {
		t.Fatalf("sync after the fault: %v", err)
	}
	st.Inject(memstore.Fault{Ops: memstore.OpCatalog, Applied: true})
	if _, err := st.CatalogPut(ctx, "tbl", "k", []byte(`1`), core.CatalogCond{}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("put: %v", err)
	}
	if v, ok := st.CatalogGet("tbl", "k"); !ok || string(v) != "1" {
		t.Fatalf("an applied put is there: %q %v", v, ok)
	}
	st.Inject(memstore.Fault{Ops: memstore.OpCommit})
	if err := st.CommitOffsets(ctx, "g", []core.GroupOffset{{Topic: "t", Offset: 1}}); !errors.Is(err, core.ErrUnavailable) || len(st.GroupOffsets("g")) != 0 {
		t.Fatalf("commit: %v %v", err, st.GroupOffsets("g"))
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.CreateTopic(ctx2, core.TopicConfig{Name: "u", Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("create with an ended context: %v", err)
	}
}
