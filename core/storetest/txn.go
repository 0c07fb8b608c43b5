package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/weir-broker/weir/core"
)

func applyTxn(t *testing.T, pl core.PartitionLog, txn *core.StateTxn) core.TxnResult {
	t.Helper()
	res, err := pl.ApplyTxn(ctxFor(t), txn)
	if err != nil {
		t.Fatalf("txn: %v", err)
	}
	return res
}

func stateIs(t *testing.T, pl core.PartitionLog, key, want string, present bool) {
	t.Helper()
	v, ok := pl.StateGet(key)
	if ok != present || string(v) != want {
		t.Fatalf("state %q = %q %v, want %q %v", key, v, ok, want, present)
	}
}

func testTxnConditions(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	res := applyTxn(t, pl, &core.StateTxn{
		Conds: []core.StateCond{{Key: "a", Absent: true}},
		Ops:   []core.StateOp{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("x")}, {Key: "b", Value: []byte("2")}, {Key: "e", Value: []byte{}}},
	})
	if !res.Applied || res.BaseOffset != 0 {
		t.Fatalf("first txn %+v", res)
	}
	stateIs(t, pl, "a", "1", true)
	stateIs(t, pl, "b", "2", true) // ops apply in order
	stateIs(t, pl, "e", "", true)
	for _, c := range []struct {
		conds []core.StateCond
		fail  int // -1: applies
	}{
		{[]core.StateCond{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("3")}}, 1},
		{[]core.StateCond{{Key: "a", Absent: true}, {Key: "b", Value: []byte("3")}}, 0}, // the first failing one
		{[]core.StateCond{{Key: "zz", Value: []byte("")}}, 0},                           // a value condition on an absent key
		{[]core.StateCond{{Key: "e", Absent: true}}, 0},                                 // an empty value is present
		{[]core.StateCond{{Key: "e", Value: nil}, {Key: "zz", Absent: true}, {Key: "a", Value: []byte("1")}}, -1},
	} {
		res := applyTxn(t, pl, &core.StateTxn{Conds: c.conds, Ops: []core.StateOp{{Key: "a", Delete: true}},
			Append: &core.AppendBatch{Timestamp: 1, Records: recs("r")}})
		if c.fail >= 0 && (res.Applied || res.FailedCond != c.fail) || c.fail < 0 && !res.Applied {
			t.Fatalf("conditions %+v: %+v, want failed condition %d", c.conds, res, c.fail)
		}
		if c.fail >= 0 {
			stateIs(t, pl, "a", "1", true) // nothing of a failed txn applies
			eq(t, "high watermark after a failed txn", pl.HighWatermark(), 0)
		}
	}
	stateIs(t, pl, "a", "", false)
	eq(t, "high watermark", pl.HighWatermark(), 1)
	// Values read are the caller's.
	v, _ := pl.StateGet("b")
	v[0] = 'X'
	stateIs(t, pl, "b", "2", true)
}

func testTxnRecords(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	appendOK(t, pl, &core.AppendBatch{Records: recs("p0", "p1")})
	res := applyTxn(t, pl, &core.StateTxn{
		Ops:    []core.StateOp{{Key: "pos", Value: []byte("2")}},
		Append: &core.AppendBatch{Timestamp: 7000, Records: []core.Record{{Value: []byte("t2")}, {Value: []byte("t3"), Timestamp: 5}}},
	})
	if !res.Applied || res.BaseOffset != 2 {
		t.Fatalf("txn with records %+v, want base 2", res)
	}
	// A transaction without records answers the high watermark.
	if res := applyTxn(t, pl, &core.StateTxn{Ops: []core.StateOp{{Key: "k", Value: []byte("v")}}}); !res.Applied || res.BaseOffset != 4 {
		t.Fatalf("txn without records %+v, want base 4", res)
	}
	if res := applyTxn(t, pl, &core.StateTxn{Append: &core.AppendBatch{Timestamp: 1}}); !res.Applied || pl.HighWatermark() != 4 {
		t.Fatalf("txn with an empty append %+v, high watermark %d", res, pl.HighWatermark())
	}
	appendOK(t, pl, &core.AppendBatch{Records: recs("p4")})
	all := readAll(t, pl, 0)
	eqSlice(t, "log", values(all), []string{"p0", "p1", "t2", "t3", "p4"})
	if all[2].Timestamp != 7000 || all[3].Timestamp != 5 {
		t.Fatalf("txn record timestamps %d %d, want 7000 5", all[2].Timestamp, all[3].Timestamp)
	}
	_, err := pl.ApplyTxn(ctxFor(t), &core.StateTxn{Append: &core.AppendBatch{ProducerID: "p", Timestamp: 1, Records: recs("x")}})
	wantErr(t, err, core.ErrBadRequest, "a txn append with a producer id")
	eq(t, "high watermark after a refused txn", pl.HighWatermark(), 5)
}

func testStateScan(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	var ops []core.StateOp
	for _, k := range []string{"sub/b/2", "sub/a/1", "pipe/x", "sub/b/10", "sub/", "su"} {
		ops = append(ops, core.StateOp{Key: k, Value: []byte("v" + k)})
	}
	applyTxn(t, pl, &core.StateTxn{Ops: ops})
	scan := func(prefix string, limit int) []string {
		var out []string
		pl.StateScan(prefix, func(k string, v []byte) bool {
			if string(v) != "v"+k {
				t.Fatalf("scan: %q = %q", k, v)
			}
			out = append(out, k)
			return len(out) < limit
		})
		return out
	}
	eqSlice(t, "scan sub/", scan("sub/", 100), []string{"sub/", "sub/a/1", "sub/b/10", "sub/b/2"})
	eqSlice(t, "scan stopped after 2", scan("sub/", 2), []string{"sub/", "sub/a/1"})
	eqSlice(t, "scan of everything", scan("", 100), []string{"pipe/x", "su", "sub/", "sub/a/1", "sub/b/10", "sub/b/2"})
	eqSlice(t, "scan of nothing", scan("zz", 100), nil)
}

// proposer is the optional pipelined transaction of raftlog's partitions,
// which the queue model uses when a store has it.
type proposer interface {
	ProposeTxn(txn *core.StateTxn) (func(context.Context) (core.TxnResult, error), error)
}

// testProposeTxn: transactions one goroutine proposes apply in the order
// proposed, each on the state the one before left.
func testProposeTxn(t *testing.T, st core.Store) {
	pl := partition(t, st, create(t, st, "", 1), 0)
	p, ok := pl.(proposer)
	if !ok {
		t.Skip("the store's partitions do not pipeline transactions")
	}
	var waits []func(context.Context) (core.TxnResult, error)
	for i := 0; i < 8; i++ {
		cond := core.StateCond{Key: "n", Absent: true}
		if i > 0 {
			cond = core.StateCond{Key: "n", Value: []byte(fmt.Sprint(i - 1))}
		}
		w, err := p.ProposeTxn(&core.StateTxn{Conds: []core.StateCond{cond}, Ops: []core.StateOp{{Key: "n", Value: []byte(fmt.Sprint(i))}},
			Append: &core.AppendBatch{Timestamp: 1, Records: recs(fmt.Sprint(i))}})
		if err != nil {
			t.Fatalf("propose %d: %v", i, err)
		}
		waits = append(waits, w)
	}
	for i, w := range waits {
		res, err := w(ctxFor(t))
		if err != nil || !res.Applied || res.BaseOffset != int64(i) {
			t.Fatalf("txn %d: %+v %v", i, res, err)
		}
	}
	stateIs(t, pl, "n", "7", true)
}
