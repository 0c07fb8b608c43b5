//go:build chaos

package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/history"
)

// The chaos run's Kafka clients (issue 13: "failover of a leader is
// survived by a producing and a consuming client without loss or
// duplicates"): a franz-go idempotent producer, a franz-go consumer and
// two members of a franz-go consumer group, through the nodes' Kafka
// listeners, recorded into the same history as
// the HTTP clients, so that history.Check judges them alike: a lost
// acknowledged record, a record at two offsets, a consumer that goes back
// (as one told "offset out of range" by a lagging replica resets to the
// start) or skips.

// kafkaTopic is the Kafka clients' topic (3 partitions, 3 replicas).
const kafkaTopic = "k"

// kafkaRate bounds the producer: the history stays the size of the HTTP
// workload's, and the two-core machine keeps room for the faults.
const kafkaRate = 200 // records per second

// kafkaWorkload is the Kafka clients of the chaos run, on topic (partitions
// parts) through the listeners seeds.
type kafkaWorkload struct {
	rec     *history.Recorder
	topic   string
	parts   int
	prod    *kgo.Client
	cons    *kgo.Client
	members []*kgo.Client

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startKafkaWorkload(t *testing.T, rec *history.Recorder, seeds []string, topic string, parts int) *kafkaWorkload {
	t.Helper()
	// A stopped or cut-off broker may never answer: give up on a request
	// after a while and retry elsewhere, as the metadata says.
	common := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.RequestTimeoutOverhead(5 * time.Second), kgo.ConnIdleTimeout(10 * time.Second)}
	prod, err := kgo.NewClient(append(common, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(500))...)
	if err != nil {
		t.Fatalf("kafka producer: %v", err)
	}
	cons, err := kgo.NewClient(append(common, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		prod.Close()
		t.Fatalf("kafka consumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &kafkaWorkload{rec: rec, topic: topic, parts: parts, prod: prod, cons: cons, cancel: cancel}
	for i := 0; i < 2; i++ {
		m, err := kgo.NewClient(append(common, kgo.ConsumerGroup(kafkaGroup), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
			kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(time.Second))...)
		if err != nil {
			w.close()
			t.Fatalf("kafka group member: %v", err)
		}
		w.members = append(w.members, m)
	}
	w.wg.Add(2 + len(w.members))
	go w.producer(ctx, "kp")
	go w.consumer(ctx, "kc")
	for i, m := range w.members {
		go w.member(ctx, fmt.Sprintf("kg%d", i), m)
	}
	return w
}

// kafkaGroup is the Kafka consumer group of the chaos run.
const kafkaGroup = "kchaos"

// member is a member of kafkaGroup. Rebalances wait while it handles a
// poll (BlockRebalanceOnPoll), so the generation it records a poll with
// is the one the records were delivered in, and the commits of a
// generation are answered before the member rejoins, as a consumer that
// commits on revocation does; without that, a commit still in flight when
// another member takes the partition over may be applied after that member
// read the committed offsets (at-least-once redelivery, but a commit that
// goes back). It commits, synchronously, the offsets after the records of
// each poll, recorded per partition.
func (w *kafkaWorkload) member(ctx context.Context, id string, cl *kgo.Client) {
	defer w.wg.Done()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		_, gen := cl.GroupMetadata()
		var recs []history.Record
		var krecs []*kgo.Record
		next := map[int32]int64{}
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, history.Record{Partition: history.Partition{Topic: r.Topic, ID: r.Partition}, Offset: r.Offset, Value: string(r.Value)})
			krecs = append(krecs, r)
			next[r.Partition] = r.Offset + 1
		})
		if len(recs) > 0 {
			w.rec.Invoke(history.Op{Kind: history.Poll, Process: id, Group: kafkaGroup, Generation: int64(gen)}).OK(recs...)
			var ops []*history.Pending
			for p, off := range next {
				ops = append(ops, w.rec.Invoke(history.Op{Kind: history.Commit, Process: id, Group: kafkaGroup,
					Partition: history.Partition{Topic: w.topic, ID: p}, Offset: off}))
			}
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := cl.CommitRecords(cctx, krecs...)
			cancel()
			for _, op := range ops {
				if err != nil {
					op.Info(err) // some partitions may have committed
				} else {
					op.OK()
				}
			}
		}
		cl.AllowRebalance()
	}
}

func (w *kafkaWorkload) close() {
	for _, m := range w.members {
		m.Close()
	}
	w.prod.Close()
	w.cons.Close()
}

// kafkaKey is every produced record's key: long and repetitive, so that the
// client's snappy shrinks even a batch of one record and the nodes store the
// batches compressed (docs/kafka.md, "Compression") through every fault.
var kafkaKey = bytes.Repeat([]byte("weir-chaos "), 16)

// producer sends record n, with the unique value kp-n, to partition
// n%parts, kafkaRate a second, never more than MaxBufferedRecords
// unacknowledged. It never produces a value twice; the client's own
// retries are what the idempotent producer must deduplicate. A record the
// client gives up on is an unknown outcome (Info).
func (w *kafkaWorkload) producer(ctx context.Context, id string) {
	defer w.wg.Done()
	tick := time.NewTicker(time.Second / kafkaRate)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		part := int32(n % w.parts)
		value := fmt.Sprintf("%s-%d", id, n)
		op := w.rec.Invoke(history.Op{Kind: history.Produce, Process: id,
			Partition: history.Partition{Topic: w.topic, ID: part}, Value: value})
		w.prod.Produce(context.Background(), &kgo.Record{Partition: part, Key: kafkaKey, Value: []byte(value)}, func(r *kgo.Record, err error) {
			if err != nil {
				op.Info(err)
				return
			}
			op.OK(history.Record{Partition: history.Partition{Topic: w.topic, ID: r.Partition}, Offset: r.Offset, Value: value})
		})
	}
}

// consumer reads every partition from the start, recording each poll's
// records as one Poll of a consumer outside any group (generation 0: its
// position per partition must only move forward, without skipping).
func (w *kafkaWorkload) consumer(ctx context.Context, id string) {
	defer w.wg.Done()
	for ctx.Err() == nil {
		op := w.rec.Invoke(history.Op{Kind: history.Poll, Process: id})
		fs := w.cons.PollFetches(ctx)
		var recs []history.Record
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, history.Record{Partition: history.Partition{Topic: r.Topic, ID: r.Partition}, Offset: r.Offset, Value: string(r.Value)})
		})
		op.OK(recs...) // records the client returned were read, whatever else failed
	}
}

// Stop ends production, waits up to a minute for what the producer has
// in flight (each record then ends OK, or Info when the client gives up or
// closes), and stops the consumer.
func (w *kafkaWorkload) Stop(t *testing.T) {
	w.cancel()
	w.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.prod.Flush(ctx); err != nil {
		t.Logf("kafka producer: %v with records in flight (they end as unknown outcomes)", err)
	}
	w.close()
}
