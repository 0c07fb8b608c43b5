package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"sync/atomic"
	"time"
)

func parseRun(args []string) (*config, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c := &config{}
	var servers string
	fs.StringVar(&c.system, "system", "weir", "weir (HTTP), kafka (Weir's Kafka listener, franz-go), nats, or disk (no server: appends of -size bytes, each followed by fsync, from -partitions writers in -dir; disk.go)")
	fs.StringVar(&c.dir, "dir", "", "disk: the directory for the writers' files (required)")
	fs.StringVar(&c.scenario, "scenario", "batch", "batch (async publish), one (one record at a time), steady (-rate records/s offered, linger 0), consume (one reader from the start) or idle (the servers' CPU with the topic in place and no load; needs -server-pids)")
	fs.StringVar(&c.label, "label", "", "name of the system in the report (default: -system)")
	fs.StringVar(&c.cluster, "cluster", "R1", "R1 or R3 (report label)")
	fs.StringVar(&servers, "servers", "", "comma-separated: http://HOST:PORT of Weir nodes, HOST:PORT of their Kafka listeners (kafka) or nats://HOST:PORT of NATS servers")
	var httpServers string
	fs.StringVar(&httpServers, "http-servers", "", "kafka: comma-separated http://HOST:PORT of the same Weir nodes; if set, the topic is created and awaited over HTTP as for weir, else with Kafka CreateTopics")
	fs.StringVar(&c.topic, "topic", "bench", "Weir topic; NATS streams are TOPIC_0..TOPIC_{partitions-1}")
	fs.IntVar(&c.partitions, "partitions", 4, "partitions (NATS: streams) of the topic")
	fs.IntVar(&c.replicas, "replicas", 1, "replication factor of the topic / streams")
	fs.IntVar(&c.producers, "producers", 10, "concurrent producers (batch), spread over the servers; kafka: one client with producers×batch records in flight")
	fs.IntVar(&c.batch, "batch", 100, "records per batch (batch)")
	fs.IntVar(&c.size, "size", 1024, "value bytes per record")
	fs.IntVar(&c.perFetch, "per-fetch", 1000, "records per fetch (consume)")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "how long to publish (batch, one, steady)")
	fs.IntVar(&c.rate, "rate", 10000, "records/s offered (steady)")
	fs.DurationVar(&c.idleWait, "idle-wait", 30*time.Second, "idle: how long the servers are left alone after the setup before -duration of measuring their CPU")
	fs.StringVar(&c.accept, "accept", "binary", "Weir fetch encoding: json or binary (application/vnd.weir.records)")
	fs.IntVar(&c.kafkaInflight, "kafka-inflight", 0, "kafka: produce requests in flight per broker; 0: the client's default (5, idempotent), N > 0: N with idempotence off")
	fs.StringVar(&c.produce, "produce", "binary", "Weir produce body: json or binary (application/vnd.weir.records)")
	fs.StringVar(&c.compression, "compression", "", "Weir: the topic's compression setting when weircmp creates it (producer, s2, uncompressed; empty: the default, producer)")
	values := fs.String("values", "x", "record values: x (the letter x repeated; compresses to almost nothing) or random (letters and digits at random; LZ codecs cannot shrink it); values.go")
	pids := fs.String("server-pids", "", "comma-separated pids of the server processes: each result then has their CPU µs per record")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if cpuPids, err = parsePids(*pids); err != nil {
		return nil, err
	}
	c.servers = splitServers(servers)
	c.httpServers = splitServers(httpServers)
	switch {
	case c.size < 0:
		return nil, fmt.Errorf("-size %d: must be 0 or more", c.size)
	case c.system == "disk" && c.dir == "":
		return nil, fmt.Errorf("-system disk needs -dir")
	case c.system != "disk" && len(c.servers) == 0:
		return nil, fmt.Errorf("-servers is required")
	}
	if c.value, err = newValues(*values, c.size); err != nil {
		return nil, err
	}
	if c.label == "" {
		c.label = c.system
	}
	return c, nil
}

// tally is what the producers of one publishing run count: records
// acknowledged, requests failed (with the first error), and each
// producer's latencies. Producer p appends only to lat[p].
type tally struct {
	acked, failed atomic.Int64
	firstErr      atomic.Value
	lat           [][]time.Duration
}

func newTally(producers int) *tally { return &tally{lat: make([][]time.Duration, producers)} }

// ack counts n records of producer p acknowledged after d.
func (t *tally) ack(p, n int, d time.Duration) {
	t.lat[p] = append(t.lat[p], d)
	t.acked.Add(int64(n))
}

// fail counts a failed request; msg describes the first one.
func (t *tally) fail(msg func() string) {
	if t.failed.Add(1) == 1 {
		t.firstErr.Store(msg())
	}
}

// result is the run's result since start, an error if nothing was acknowledged.
func (t *tally) result(start time.Time) (result, error) {
	el := time.Since(start)
	p50, p99 := latencies(t.lat)
	r := result{Records: t.acked.Load(), Seconds: el.Seconds(), P50us: p50, P99us: p99, Errors: t.failed.Load()}
	if r.Records == 0 {
		return r, fmt.Errorf("no record acknowledged: %v", t.firstErr.Load())
	}
	if r.Errors > 0 {
		fmt.Fprintf(os.Stderr, "weircmp: %d failed requests, the first: %v\n", r.Errors, t.firstErr.Load())
	}
	return r, nil
}

// latencies merges per-producer samples and returns p50 and p99 in µs.
func latencies(per [][]time.Duration) (p50, p99 float64) {
	q := quantiles(per, 0.50, 0.99)
	return q[0], q[1]
}

// quantiles merges per-producer samples and returns the quantiles qs of
// them in µs (zeros when there are none).
func quantiles(per [][]time.Duration, qs ...float64) []float64 {
	var all []time.Duration
	for _, l := range per {
		all = append(all, l...)
	}
	out := make([]float64, len(qs))
	if len(all) == 0 {
		return out
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for i, f := range qs {
		out[i] = float64(all[min(len(all)-1, int(f*float64(len(all))))]) / 1e3
	}
	return out
}

// keyOf is the i-th key of producer p: keys spread over the partitions.
func keyOf(p, i int) string { return fmt.Sprintf("k-%d-%d", p, i) }

// partitionOf spreads keys over n partitions the same way for every system
// that lets the client choose (NATS); Weir hashes keys itself (murmur2).
func partitionOf(key string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}
