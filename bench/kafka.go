package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"
)

// runKafka runs one scenario against Weir's Kafka listener (-servers are
// HOST:PORT Kafka addresses) with franz-go's kgo, in its defaults unless
// said: idempotent producer, acks=all, up to 5 produce requests in flight
// per broker (-kafka-inflight: another number, not idempotent), the sticky key
// partitioner (murmur2 of the key, as Weir's HTTP path), batches
// compressed with snappy (kgo's default).
func runKafka(c *config) (result, error) {
	ctx := context.Background()
	if err := kafkaSetup(ctx, c); err != nil {
		return result{}, err
	}
	switch c.scenario {
	case "batch":
		return kafkaBatch(ctx, c, c.producers*c.batch)
	case "one":
		return kafkaOne(ctx, c)
	case "steady":
		return kafkaSteady(ctx, c)
	case "consume":
		return kafkaConsume(ctx, c)
	case "idle":
		return idle(c)
	}
	return result{}, fmt.Errorf("unknown scenario %q", c.scenario)
}

func kafkaClient(c *config, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(c.servers...), kgo.DefaultProduceTopic(c.topic)}
	if c.kafkaInflight > 0 {
		// kgo allows another number of requests in flight only without
		// idempotence (with it: 5 per broker from Produce v4 on, as the
		// Java client and librdkafka).
		base = append(base, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(c.kafkaInflight))
	}
	return kgo.NewClient(append(base, opts...)...)
}

// kafkaSetup creates the topic and waits until it is ready. With
// -http-servers the topic is created and awaited over Weir's HTTP API, as
// for -system weir (which also waits for the cluster to settle); without,
// through Kafka CreateTopics (kadm). Either way it then waits until Kafka
// Metadata lists a broker per -servers address and a leader for every
// partition, so that the clients send to the leaders from the start.
func kafkaSetup(ctx context.Context, c *config) error {
	if len(c.httpServers) > 0 {
		hc := &fasthttp.Client{ReadTimeout: time.Minute, WriteTimeout: time.Minute}
		hcfg := *c
		hcfg.servers = c.httpServers
		if err := weirSetup(hc, &hcfg); err != nil {
			return err
		}
	}
	cl, err := kafkaClient(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if len(c.httpServers) == 0 {
		rs, err := adm.CreateTopic(ctx, int32(c.partitions), int16(c.replicas), nil, c.topic)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic: %w", err)
		}
		if rs.Err != nil && !errors.Is(rs.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic: %w", rs.Err)
		}
	}
	for stable := 0; stable < 3; {
		if ctx.Err() != nil {
			return fmt.Errorf("topic %s: Kafka metadata did not show %d brokers and a leader per partition", c.topic, len(c.servers))
		}
		ok := false
		if m, err := adm.Metadata(ctx, c.topic); err == nil && len(m.Brokers) >= len(c.servers) {
			t, found := m.Topics[c.topic]
			ok = found && t.Err == nil && len(t.Partitions) == c.partitions
			for _, p := range t.Partitions {
				ok = ok && p.Err == nil && p.Leader >= 0
			}
		}
		if ok {
			stable++
		} else {
			stable = 0
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// kafkaKeys returns n distinct keys for producer p.
func kafkaKeys(p, n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(keyOf(p, i))
	}
	return keys
}

// kafkaBatch produces asynchronously from one client for c.duration with at
// most inflight records buffered or unacknowledged (kgo.MaxBufferedRecords:
// Produce blocks while the client holds that many), the client's default
// linger (10 ms) and batching. Latency is per record, from the Produce call
// (which includes any wait for buffer space, as Kafka's producer-perf-test
// counts it) to its acknowledgement.
func kafkaBatch(ctx context.Context, c *config, inflight int) (result, error) {
	cl, err := kafkaClient(c, kgo.MaxBufferedRecords(inflight))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	keys := kafkaKeys(0, 8*inflight)
	var acked, failed atomic.Int64
	var firstErr atomic.Value
	var mu sync.Mutex
	lat := make([]time.Duration, 0, 1<<20)
	start := startClock()
	deadline := start.Add(c.duration)
	for i := 0; time.Now().Before(deadline); i++ {
		t0 := time.Now()
		cl.Produce(ctx, &kgo.Record{Key: keys[i%len(keys)], Value: c.value(i)}, func(_ *kgo.Record, err error) {
			d := time.Since(t0)
			if err != nil {
				if failed.Add(1) == 1 {
					firstErr.Store(err.Error())
				}
				return
			}
			acked.Add(1)
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		})
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return result{}, fmt.Errorf("flush: %w", err)
	}
	el := time.Since(start)
	mu.Lock()
	p50, p99 := latencies([][]time.Duration{lat})
	mu.Unlock()
	r := result{Records: acked.Load(), Seconds: el.Seconds(), P50us: p50, P99us: p99, Errors: failed.Load()}
	if r.Records == 0 {
		return r, fmt.Errorf("no record acknowledged: %v", firstErr.Load())
	}
	return r, nil
}

// kafkaOne produces one record at a time (ProduceSync, linger 0) for
// c.duration; latency per record.
func kafkaOne(ctx context.Context, c *config) (result, error) {
	cl, err := kafkaClient(c, kgo.ProducerLinger(0))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	keys := kafkaKeys(0, 64)
	var acked, failed int64
	var firstErr error
	var lat []time.Duration
	start := startClock()
	deadline := start.Add(c.duration)
	for i := 0; time.Now().Before(deadline); i++ {
		t0 := time.Now()
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: keys[i%len(keys)], Value: c.value(i)}).FirstErr(); err != nil {
			if failed++; failed == 1 {
				firstErr = err
			}
			continue
		}
		lat = append(lat, time.Since(t0))
		acked++
	}
	el := time.Since(start)
	p50, p99 := latencies([][]time.Duration{lat})
	r := result{Records: acked, Seconds: el.Seconds(), P50us: p50, P99us: p99, Errors: failed}
	if r.Records == 0 {
		return r, fmt.Errorf("no record acknowledged: %v", firstErr)
	}
	return r, nil
}

// kafkaSteady offers c.rate records/s from one client with linger 0
// (steady in steady.go); records are produced asynchronously, so a slow
// acknowledgement does not slow the offered load.
func kafkaSteady(ctx context.Context, c *config) (result, error) {
	cl, err := kafkaClient(c, kgo.ProducerLinger(0))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	keys := kafkaKeys(0, 1024)
	return steady(c, func(i int, done func(error)) {
		cl.Produce(ctx, &kgo.Record{Key: keys[i%len(keys)], Value: c.value(i)}, func(_ *kgo.Record, err error) { done(err) })
	})
}

// kafkaConsume reads the whole topic from the start with one client (no
// group; every partition assigned, the client's default fetch sizes:
// 50 MiB per fetch, 1 MiB per partition) until it has the records that
// ListOffsets reported when it started.
func kafkaConsume(ctx context.Context, c *config) (result, error) {
	acl, err := kafkaClient(c)
	if err != nil {
		return result{}, err
	}
	defer acl.Close()
	adm := kadm.NewClient(acl)
	ends, err := adm.ListEndOffsets(ctx, c.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return result{}, fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, c.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return result{}, fmt.Errorf("list start offsets: %w", err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		want += o.Offset - s.Offset
	})
	if want == 0 {
		return result{}, errEmpty(c)
	}
	start := startClock()
	cl, err := kafkaClient(c, kgo.ConsumeTopics(c.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var got int64
	for got < want {
		fs := cl.PollFetches(pctx)
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Value) != c.size && bad == nil {
				bad = fmt.Errorf("record of %d bytes at %d of partition %d", len(r.Value), r.Offset, r.Partition)
			}
			got++
		})
		if bad != nil {
			return result{}, bad
		}
		if err := fs.Err(); err != nil {
			return result{}, fmt.Errorf("fetch after %d of %d records: %w", got, want, err)
		}
	}
	return result{Records: got, Seconds: time.Since(start).Seconds()}, nil
}
