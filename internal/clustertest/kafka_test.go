package clustertest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// kafkaProducer produces to every partition of a topic without pause
// through a franz-go idempotent producer (its default), keeping at most
// MaxBufferedRecords in flight. Record i goes to partition i%partitions
// with key and value "<partition>-<i>", so the value tells the production
// order. Every acknowledgement goes into the Ledger; every failure is kept.
type kafkaProducer struct {
	cl     *kgo.Client
	Ledger *tu.Ledger
	stop   chan struct{}
	done   chan struct{}

	mu       sync.Mutex // guards the fields below
	produced int        // records handed to the client
	settled  int        // records acknowledged or failed
	acked    map[int32][]ackedRecord
	failures []string
}

type ackedRecord struct {
	seq    int
	offset int64
}

func startKafkaProducer(ctx context.Context, cl *kgo.Client, partitions int) *kafkaProducer {
	p := &kafkaProducer{cl: cl, Ledger: tu.NewLedger(), stop: make(chan struct{}), done: make(chan struct{}), acked: map[int32][]ackedRecord{}}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			part := int32(i % partitions)
			v := []byte(fmt.Sprintf("%d-%d", part, i))
			p.mu.Lock()
			p.produced++
			p.mu.Unlock()
			seq := i
			cl.Produce(ctx, &kgo.Record{Partition: part, Key: v, Value: v}, func(r *kgo.Record, err error) {
				p.mu.Lock()
				defer p.mu.Unlock()
				p.settled++
				if err != nil {
					p.failures = append(p.failures, fmt.Sprintf("record %d (partition %d): %v", seq, part, err))
					return
				}
				p.acked[part] = append(p.acked[part], ackedRecord{seq, r.Offset})
				p.Ledger.Ack(int(part), r.Offset, string(r.Value))
			}) // blocks while MaxBufferedRecords are in flight
		}
	}()
	return p
}

// inFlight is the number of records produced and not yet acknowledged.
func (p *kafkaProducer) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.produced - p.settled
}

// ackedOn counts the acknowledgements on partition (-1: all).
func (p *kafkaProducer) ackedOn(partition int32) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for part, a := range p.acked {
		if partition < 0 || part == partition {
			n += len(a)
		}
	}
	return n
}

// awaitAcks waits until partition (-1: all together) has n acknowledgements.
func (p *kafkaProducer) awaitAcks(t *testing.T, partition int32, n int, timeout time.Duration) {
	t.Helper()
	tu.Eventually(t, timeout, fmt.Sprintf("%d Kafka acknowledgements on partition %d", n, partition), func() bool {
		return p.ackedOn(partition) >= n
	})
}

// finish stops producing and waits (bounded by ctx) until every produced
// record is acknowledged or failed.
func (p *kafkaProducer) finish(t *testing.T, ctx context.Context) {
	t.Helper()
	close(p.stop)
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatalf("the producer did not stop: %v", ctx.Err())
	}
	if err := p.cl.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (%d records in flight)", err, p.inFlight())
	}
}

// TestKafkaIdempotentProducerLeaderKill9 is issue 13's failover test on
// three `weir serve` processes with a Kafka listener each: a franz-go
// idempotent producer sends to an RF 3 topic without pause; once 600
// records are acknowledged, and with produces in flight, the process
// leading partition 0 is killed with SIGKILL. Production goes on until
// 300 more records of partition 0 are acknowledged by the new leader and
// 1,500 in all; the killed node is restarted and rejoins while production
// goes on; then a franz-go consumer reads the topic from the start. Every
// acknowledged record is there exactly once at its acknowledged offset, no
// record is there twice, and each partition holds the acknowledged records
// in production order; the same holds for every replica read over HTTP.
func TestKafkaIdempotentProducerLeaderKill9(t *testing.T) {
	const topic, partitions = "kx", 3
	kafka := map[int]string{}
	procs := tu.StartWeirClusterWith(t, 3, func(node int) []string {
		kafka[node] = tu.FreeAddr(t)
		return []string{"--kafka-addr", kafka[node], "--kafka-advertised-addr", kafka[node]}
	})
	c := &cluster{t: t, procs: procs}
	c.waitUp()
	if r := tu.Do(t, "POST", c.url(1)+"/v1/topics", map[string]any{"name": topic, "partitions": partitions, "replication_factor": 3}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	c.waitSettled(c.url(1))
	seeds := []string{kafka[1], kafka[2], kafka[3]}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Every node's Metadata names the three brokers and the Raft leaders.
	adm := kadm.NewClient(newKafkaClient(t, kgo.SeedBrokers(kafka[2])))
	tu.Eventually(t, 30*time.Second, "Kafka metadata with 3 brokers and the Raft leaders", func() bool {
		md, err := adm.Metadata(ctx, topic)
		if err != nil || len(md.Brokers) != 3 || len(md.Topics[topic].Partitions) != partitions {
			return false
		}
		for p, pd := range md.Topics[topic].Partitions {
			if uint64(pd.Leader) != tu.LeaderOf(t, c.url(1), topic, int(p)) {
				return false
			}
		}
		return true
	})

	pr := newKafkaClient(t, kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(300), kgo.MetadataMinAge(200*time.Millisecond), kgo.RequestTimeoutOverhead(5*time.Second))
	load := startKafkaProducer(ctx, pr, partitions)
	if id, epoch, err := pr.ProducerID(ctx); err != nil || id < 0 {
		t.Fatalf("not an idempotent producer: id %d epoch %d: %v", id, epoch, err)
	}

	// A consumer reads the whole time: through the kill, the failover and
	// the restart.
	live := startLiveConsumer(ctx, newKafkaClient(t, kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(200*time.Millisecond), kgo.RequestTimeoutOverhead(5*time.Second)))

	// Fence: 600 acknowledged (some on every partition), the consumer
	// reading and records in flight; then kill -9 the leader of partition 0.
	load.awaitAcks(t, -1, 600, 60*time.Second)
	for p := int32(0); p < partitions; p++ {
		load.awaitAcks(t, p, 50, 30*time.Second)
	}
	tu.Eventually(t, 30*time.Second, "the live consumer reading", func() bool { return live.count() > 0 })
	tu.Eventually(t, 10*time.Second, "records in flight", func() bool { return load.inFlight() > 0 })
	victim := tu.LeaderOf(t, c.url(1), topic, 0)
	if victim == 0 {
		t.Fatalf("no leader for %s/0", topic)
	}
	inFlight, before := load.inFlight(), load.ackedOn(0)
	killed := time.Now()
	c.procs[victim-1].Kill()
	t.Logf("kill -9 of node %d (leader of %s/0) with %d records acknowledged and %d in flight", victim, topic, load.ackedOn(-1), inFlight)

	// Production goes on through the new leader.
	load.awaitAcks(t, 0, before+300, 60*time.Second)
	load.awaitAcks(t, -1, 1500, 60*time.Second)
	t.Logf("%s/0 resumed: %d acknowledged in %v after the kill", topic, load.ackedOn(0)-before, time.Since(killed).Round(time.Millisecond))

	// The killed node comes back (same data dir and ports) while production goes on.
	c.procs[victim-1].Restarted()
	c.procs[victim-1].WaitReady(60 * time.Second)
	more := load.ackedOn(-1) + 300
	load.awaitAcks(t, -1, more, 60*time.Second)
	load.finish(t, ctx)
	load.mu.Lock()
	failures := load.failures
	load.mu.Unlock()
	for _, f := range failures {
		t.Errorf("produce failed: %s", f)
	}
	total := load.ackedOn(-1)
	c.waitSettled(c.url(victim)) // the restarted node caught up

	// A consumer reads everything from the start.
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || end.Error() != nil {
		t.Fatalf("end offsets: %v %v", err, end.Error())
	}
	var logLen int64
	end.Each(func(o kadm.ListedOffset) { logLen += o.Offset })
	cons := newKafkaClient(t, kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consumed := map[int32][]*kgo.Record{}
	n := int64(0)
	for n < logLen {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", n, logLen)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v (the client retries)", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			consumed[r.Partition] = append(consumed[r.Partition], r)
			n++
		})
	}
	if logLen != int64(total) {
		t.Errorf("the topic holds %d records, %d were acknowledged (and none failed)", logLen, total)
	}

	// Exactly once, at the acknowledged offset, in production order.
	load.mu.Lock()
	acked := load.acked
	load.mu.Unlock()
	for p := int32(0); p < partitions; p++ {
		recs := consumed[p]
		at := map[string]int64{}
		for i, r := range recs {
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d read at offset %d: offsets not dense", p, i, r.Offset)
			}
			if j, dup := at[string(r.Value)]; dup {
				t.Errorf("partition %d: %q at offsets %d and %d: a duplicate", p, r.Value, j, r.Offset)
			}
			at[string(r.Value)] = r.Offset
		}
		a := append([]ackedRecord(nil), acked[p]...)
		sort.Slice(a, func(i, j int) bool { return a[i].seq < a[j].seq })
		prev := int64(-1)
		for _, ar := range a {
			v := fmt.Sprintf("%d-%d", p, ar.seq)
			off, ok := at[v]
			switch {
			case !ok:
				t.Errorf("partition %d: acknowledged %q (offset %d) is lost", p, v, ar.offset)
			case off != ar.offset:
				t.Errorf("partition %d: acknowledged %q at offset %d, read at %d", p, v, ar.offset, off)
			case off <= prev:
				t.Errorf("partition %d: %q produced after the record at offset %d is at offset %d: out of order", p, v, prev, off)
			}
			prev = max(prev, off)
		}
		// The log's own order is production order too, unacknowledged
		// records included (there are none unless a produce failed).
		lastSeq := -1
		for _, r := range recs {
			seq, err := strconv.Atoi(strings.TrimPrefix(string(r.Value), fmt.Sprintf("%d-", p)))
			if err != nil || seq <= lastSeq {
				t.Errorf("partition %d offset %d: %q after sequence %d", p, r.Offset, r.Value, lastSeq)
				break
			}
			lastSeq = seq
		}
	}
	// The consumer that read through the failover got the same records at
	// the same offsets: none lost, none twice.
	tu.Eventually(t, 60*time.Second, "the live consumer to reach the end of the log", func() bool { return live.count() >= logLen })
	got := live.stop()
	for p := int32(0); p < partitions; p++ {
		// The first record that differs says what went wrong (a re-read
		// from an earlier offset, a gap), the counts how much.
		for i, r := range got[p][:min(len(got[p]), len(consumed[p]))] {
			if r.Offset != consumed[p][i].Offset || string(r.Value) != string(consumed[p][i].Value) {
				t.Errorf("partition %d: the live consumer's record %d is %q at %d, the log's %q at %d", p, i, r.Value, r.Offset, consumed[p][i].Value, consumed[p][i].Offset)
				break
			}
		}
		if len(got[p]) != len(consumed[p]) {
			t.Errorf("partition %d: the consumer reading through the failover got %d records, the log holds %d", p, len(got[p]), len(consumed[p]))
		}
	}

	// Over HTTP: every replica, read from its own node, holds the same
	// records, and the acknowledged ones exactly once at their offsets.
	tu.CheckTopic(t, load.Ledger, topic, c.url(1), c.url)
	t.Logf("%d records acknowledged (%d produced in flight at the kill), read back exactly once over Kafka and from each replica over HTTP", total, inFlight)
}

// liveConsumer polls a Kafka consumer on its own goroutine, keeping every
// record it gets in order per partition.
type liveConsumer struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	recs   map[int32][]*kgo.Record
	n      int64
}

func startLiveConsumer(ctx context.Context, cl *kgo.Client) *liveConsumer {
	ctx, cancel := context.WithCancel(ctx)
	lc := &liveConsumer{cancel: cancel, done: make(chan struct{}), recs: map[int32][]*kgo.Record{}}
	go func() {
		defer close(lc.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			lc.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				lc.recs[r.Partition] = append(lc.recs[r.Partition], r)
				lc.n++
			})
			lc.mu.Unlock()
		}
	}()
	return lc
}

func (lc *liveConsumer) count() int64 {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.n
}

// stop ends the polling and returns what was read.
func (lc *liveConsumer) stop() map[int32][]*kgo.Record {
	lc.cancel()
	<-lc.done
	return lc.recs
}

func newKafkaClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
