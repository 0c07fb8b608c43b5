package history_test

import (
	"errors"
	"fmt"

	"github.com/weir-broker/weir/internal/history"
)

func Example() {
	rec := history.NewRecorder(nil)
	t0 := history.Partition{Topic: "orders", ID: 0}

	// A producer: record the request, then its outcome.
	for i, v := range []string{"p1-0", "p1-1"} {
		p := rec.Invoke(history.Op{Kind: history.Produce, Process: "p1", Partition: t0, Value: v})
		p.OK(history.Record{Partition: t0, Offset: int64(i)}) // what the broker answered
	}
	p := rec.Invoke(history.Op{Kind: history.Produce, Process: "p1", Partition: t0, Value: "p1-2"})
	p.Info(errors.New("timeout")) // may or may not have been appended

	// A consumer of group g in rebalance epoch 1, during the final drain.
	c := rec.Invoke(history.Op{Kind: history.Poll, Process: "c1", Group: "g", Generation: 1})
	c.OK(history.Record{Partition: t0, Offset: 0, Value: "p1-0"})

	rep := history.Check(rec.History(), history.Config{Drained: true})
	fmt.Print(rep)
	fmt.Println("total", rep.Total())
	// Output:
	// anomaly class=inconsistent-offsets count=0
	// anomaly class=duplicate count=0
	// anomaly class=lost-write count=1
	//   orders/0@1="p1-1" acknowledged, never read (highest offset read 0)
	// anomaly class=failed-then-read count=0
	// anomaly class=poll-skip count=0
	// anomaly class=nonmonotonic-poll count=0
	// anomaly class=nonmonotonic-send count=0
	// anomaly class=realtime-order count=0
	// anomaly class=commit-backwards count=0
	// anomaly class=queue-redelivered-after-ack count=0
	// anomaly class=exactly-once-count count=0
	// total 1
}
