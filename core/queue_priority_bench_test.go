package core

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkQueueReceive measures receive+ack of 10-message batches on one
// in-memory partition (or four, ordering "key") pre-filled with the same records (priorities 0–9
// mixed, keys k0…k1023) for a plain and a priority subscription: the cost of the queue
// logic itself, without Raft. ns/op is per message.
//
//	go test ./core -run '^$' -bench QueueReceive -benchtime 20000x -count 3
func BenchmarkQueueReceive(b *testing.B) {
	for _, c := range []struct {
		name       string
		prio       bool
		ordering   string
		partitions int
	}{
		{"plain", false, OrderingNone, 1}, {"priority", true, OrderingNone, 1},
		{"plain-key-4p", false, OrderingKey, 4}, {"priority-key-4p", true, OrderingKey, 4},
	} {
		prio := c.prio
		b.Run(c.name, func(b *testing.B) {
			store := newMemStore()
			store.addTopic("t", c.partitions)
			broker := newBrokerT(b, store, BrokerConfig{})
			q := newQueuesT(b, broker, QueueConfig{})
			defer q.Close()
			ctx := context.Background()
			if _, err := q.CreateSubscription(ctx, SubscriptionConfig{Topic: "t", Name: "s", Priority: prio, Ordering: c.ordering}); err != nil {
				b.Fatal(err)
			}
			val := make([]byte, 100)
			for i := 0; i < b.N; i += 100 {
				req := &ProduceRequest{Topic: "t"}
				for j := i; j < i+100; j++ {
					req.Records = append(req.Records, ProduceRecord{Partition: -1, Record: Record{Key: []byte("k" + strconv.Itoa(j%1024)), Value: val,
						Headers: []Header{{HeaderPriority, strconv.Itoa(j * 7 % 10)}}}})
				}
				if _, err := broker.Produce(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for n := 0; n < b.N; {
				ms, err := q.Receive(ctx, &ReceiveRequest{Topic: "t", Subscription: "s", MaxRecords: 10})
				if err != nil || len(ms) == 0 {
					b.Fatalf("receive: %d messages, %v", len(ms), err)
				}
				rs := make([]string, len(ms))
				for i, m := range ms {
					rs[i] = m.Receipt
				}
				if _, err := q.Ack(ctx, "t", "s", rs); err != nil {
					b.Fatal(err)
				}
				n += len(ms)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
