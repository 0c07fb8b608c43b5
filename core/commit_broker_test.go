package core_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
)

// Concurrent single-record produces to one partition (merged into shared
// proposals by group commit whenever they wait for one) each get a
// distinct offset, the offsets are dense, and each holds that produce's
// record. Idempotent producers retrying every produce still get the
// original offsets back, marked duplicate, and nothing twice.
func TestConcurrentSingleRecordProduces(t *testing.T) {
	t.Parallel()
	for _, idempotent := range []bool{false, true} {
		t.Run(fmt.Sprintf("idempotent=%v", idempotent), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, memstore.Config{})
			e.topic(t, "t", 1)
			const producers, each = 32, 25
			offsets := make([][]int64, producers)
			errs := make(chan error, producers)
			var wg sync.WaitGroup
			for p := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						req := func() *core.ProduceRequest {
							r := &core.ProduceRequest{Topic: "t", Records: []core.ProduceRecord{
								{Partition: 0, Record: core.Record{Value: fmt.Appendf(nil, "p%d-%d", p, i)}}}}
							if idempotent {
								r.ProducerID, r.Sequence = fmt.Sprintf("prod-%d", p), int64(i)
							}
							return r
						}
						res, err := e.broker.Produce(e.ctx, req())
						if err != nil {
							errs <- err
							return
						}
						offsets[p] = append(offsets[p], res.Offsets[0].Offset)
						if !idempotent {
							continue
						}
						again, err := e.broker.Produce(e.ctx, req())
						if err != nil {
							errs <- err
							return
						}
						if !again.Duplicate || again.Offsets[0].Offset != res.Offsets[0].Offset {
							errs <- fmt.Errorf("retry of p%d-%d: %+v, want a duplicate at offset %d", p, i, again, res.Offsets[0].Offset)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			e.waitHWM(t, "t", 0, producers*each)
			vals := e.values(t, "t", 0)
			seen := map[int64]bool{}
			for p, offs := range offsets {
				for i, off := range offs {
					if seen[off] {
						t.Fatalf("offset %d answered twice", off)
					}
					seen[off] = true
					if want := fmt.Sprintf("p%d-%d", p, i); vals[off] != want {
						t.Fatalf("produce %s answered offset %d, which holds %q", want, off, vals[off])
					}
				}
			}
		})
	}
}
