package core_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
)

// Produces queued one after the other (none waited for before the next is
// queued) are in the log in the order queued, each answered with its own
// offsets; an idempotent producer's queued retry is a duplicate with the
// original offsets. Where the partition cannot queue (this node does not
// lead it), QueueProduce produces synchronously and the order still holds.
func TestQueueProduceKeepsTheOrder(t *testing.T) {
	t.Parallel()
	for _, leads := range []bool{true, false} {
		t.Run(fmt.Sprintf("leader=%v", leads), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, memstore.Config{})
			e.topic(t, "t", 2)
			e.log(t, "t", 1).SetLeader(leads)
			req := func(i int) *core.ProduceRequest {
				return &core.ProduceRequest{Topic: "t", ProducerID: "k", Sequence: int64(2 * i), Records: []core.ProduceRecord{
					{Partition: 1, Record: core.Record{Value: fmt.Appendf(nil, "v%d-a", i)}},
					{Partition: 1, Record: core.Record{Value: fmt.Appendf(nil, "v%d-b", i)}},
				}}
			}
			const n = 40
			waits := make([]func() (*core.ProduceResult, error), 0, n+1)
			for i := range n {
				w, err := e.broker.QueueProduce(e.ctx, req(i))
				if err != nil {
					t.Fatalf("queue %d: %v", i, err)
				}
				waits = append(waits, func() (*core.ProduceResult, error) { return w(e.ctx) })
			}
			retry, err := e.broker.QueueProduce(e.ctx, req(n-1)) // within the recent batches a partition remembers
			if err != nil {
				t.Fatal(err)
			}
			waits = append(waits, func() (*core.ProduceResult, error) { return retry(e.ctx) })
			for i, w := range waits {
				res, err := w()
				if err != nil {
					t.Fatalf("produce %d: %v", i, err)
				}
				want := int64(2 * i)
				if i == n {
					want = 2 * (n - 1)
					if !res.Duplicate {
						t.Fatalf("the retry of the last produce is not a duplicate: %+v", res)
					}
				}
				if res.Offsets[0] != (core.RecordOffset{Partition: 1, Offset: want}) || res.Offsets[1].Offset != want+1 {
					t.Fatalf("produce %d landed at %+v, want offsets %d and %d of partition 1", i, res.Offsets, want, want+1)
				}
			}
			vals := e.values(t, "t", 1)
			if len(vals) != 2*n {
				t.Fatalf("partition 1 holds %d records, want %d", len(vals), 2*n)
			}
			for i := range n {
				if vals[2*i] != fmt.Sprintf("v%d-a", i) || vals[2*i+1] != fmt.Sprintf("v%d-b", i) {
					t.Fatalf("offsets %d–%d hold %q, %q: out of order", 2*i, 2*i+1, vals[2*i], vals[2*i+1])
				}
			}
		})
	}
}

// QueueProduce refuses what Produce refuses, having written nothing: a
// produce over two partitions, an unknown topic, a sequence gap (answered
// by wait, as the partition decides it).
func TestQueueProduceRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, memstore.Config{})
	e.topic(t, "t", 2)
	two := &core.ProduceRequest{Topic: "t", Records: []core.ProduceRecord{
		{Partition: 0, Record: core.Record{Value: []byte("a")}},
		{Partition: 1, Record: core.Record{Value: []byte("b")}},
	}}
	if _, err := e.broker.QueueProduce(e.ctx, two); !errors.Is(err, core.ErrBadRequest) {
		t.Fatalf("a queued produce over two partitions: %v, want ErrBadRequest", err)
	}
	if _, err := e.broker.QueueProduce(e.ctx, &core.ProduceRequest{Topic: "nope", Records: two.Records[:1]}); !errors.Is(err, core.ErrTopicNotFound) {
		t.Fatalf("unknown topic: %v, want ErrTopicNotFound", err)
	}
	one := func(seq int64) *core.ProduceRequest {
		return &core.ProduceRequest{Topic: "t", ProducerID: "p", Sequence: seq, Records: two.Records[:1]}
	}
	w, err := e.broker.QueueProduce(e.ctx, one(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w(e.ctx); err != nil {
		t.Fatal(err)
	}
	w, err = e.broker.QueueProduce(e.ctx, one(5))
	if err != nil {
		t.Fatal(err)
	}
	var se *core.SequenceError
	if _, err := w(e.ctx); !errors.As(err, &se) || se.Expected != 1 {
		t.Fatalf("sequence 5 after 0: %v, want a SequenceError expecting 1", err)
	}
	if got := e.values(t, "t", 0); len(got) != 1 {
		t.Fatalf("partition 0 holds %q, want the one record", got)
	}
}
