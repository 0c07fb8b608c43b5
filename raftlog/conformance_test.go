package raftlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
	"github.com/weir-broker/weir/core/storetest"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestConformance runs core/storetest's suite against one single-node host
// (the suite names everything after its subtests, so they share it), with
// small segments so that retention sees several; then checks that
// core/memstore lays out segments byte for byte as this store does, so that
// retention tests on memstore hold here.
func TestConformance(t *testing.T) {
	const segBytes = 4 << 10
	h, err := New(Config{NodeID: 1, DataDir: t.TempDir(), RaftAddr: tu.FreeAddr(t), HTTPAddr: "127.0.0.1:1", SegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tu.Eventually(t, 20*time.Second, "metadata ready", h.Ready)
	storetest.Run(t, func(*testing.T) core.Store { return h })
	t.Run("memstore-segments-match", func(t *testing.T) {
		want := writeMix(t, h)
		got := writeMix(t, memstore.New(memstore.Config{SegmentBytes: segBytes}))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("memstore segments\n%+v\nraftlog segments\n%+v", got, want)
		}
	})
}

// writeMix writes appends (idempotent, with keys and headers), transactions
// with and without records, and trims, and returns the segments.
func writeMix(t *testing.T, st core.Store) []core.SegmentInfo {
	ctx, pl := onePartition(t, st, "segmix", 30*time.Second)
	for i := 0; i < 40; i++ {
		_, err := pl.Append(ctx, &core.AppendBatch{ProducerID: "p", Sequence: int64(2 * i), Timestamp: int64(1000 + i),
			Records: []core.Record{{Key: []byte("k"), Value: make([]byte, 90*i)}, {Value: []byte("x"), Headers: []core.Header{{Key: "a", Value: "b"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			txn := &core.StateTxn{Ops: []core.StateOp{{Key: fmt.Sprint("k", i), Value: []byte("v")}}}
			if i%14 == 0 {
				txn.Append = &core.AppendBatch{Timestamp: 5, Records: []core.Record{{Value: []byte("t")}}}
			}
			if _, err := pl.ApplyTxn(ctx, txn); err != nil {
				t.Fatal(err)
			}
		}
		if i == 25 || i == 33 {
			if err := pl.TrimTo(ctx, pl.Segments()[1].NextOffset); err != nil {
				t.Fatal(err)
			}
		}
	}
	return pl.Segments()
}
