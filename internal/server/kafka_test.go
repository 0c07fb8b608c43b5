package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// startKafkaNode starts a node with the Kafka listener on a free port.
func startKafkaNode(t *testing.T) *Server {
	t.Helper()
	s := startNode(t, t.TempDir(), func(c *Config) { c.KafkaAddr = "127.0.0.1:0" })
	t.Cleanup(func() { stop(t, s) })
	if s.KafkaAddr() == "" {
		t.Fatal("no Kafka address")
	}
	return s
}

func kafkaClient(t *testing.T, s *Server, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.KafkaAddr()), kgo.RequestTimeoutOverhead(20 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// storedBytes is what partition 0 of topic takes in its segments.
func storedBytes(t *testing.T, s *Server, topic string) int64 {
	t.Helper()
	pl, err := s.Broker.Store().Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sg := range pl.Segments() {
		n += sg.Bytes
	}
	return n
}

// describedConfig is topic's config key as DescribeConfigs describes it
// ("" when it is not listed).
func describedConfig(t *testing.T, adm *kadm.Client, topic, key string) string {
	t.Helper()
	rc, err := adm.DescribeTopicConfigs(kctx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	v, err := rc.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range v.Configs {
		if c.Key == key {
			return c.MaybeValue()
		}
	}
	return ""
}

func kctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// consumeN reads n records of topic from the start with a fresh client.
func consumeN(t *testing.T, s *Server, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := kafkaClient(t, s, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := kctx(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s before the deadline", len(out), n, topic)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestKafkaAdminAndRoundTrip(t *testing.T) {
	s := startKafkaNode(t)
	ctx := kctx(t)
	adm := kadm.NewClient(kafkaClient(t, s))

	// Admin: create, describe configs, metadata, create partitions refused.
	cr, err := adm.CreateTopic(ctx, 3, -1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "kt")
	if err != nil || cr.Err != nil {
		t.Fatalf("create topic: %v %v", err, cr.Err)
	}
	if cr, _ := adm.CreateTopic(ctx, 1, -1, nil, "kt"); cr.Err != kerr.TopicAlreadyExists {
		t.Fatalf("second create: %v, want TOPIC_ALREADY_EXISTS", cr.Err)
	}
	td, err := adm.ListTopics(ctx, "kt")
	if err != nil || len(td["kt"].Partitions) != 3 {
		t.Fatalf("metadata: %v %+v", err, td)
	}
	if v := describedConfig(t, adm, "kt", "retention.ms"); v != "3600000" {
		t.Fatalf("retention.ms described as %q", v)
	}
	cp, err := adm.UpdatePartitions(ctx, 2, "kt")
	if err != nil || cp["kt"].Err != kerr.InvalidPartitions {
		t.Fatalf("shrink to 2 partitions: %v %+v, want INVALID_PARTITIONS", err, cp)
	}

	// Produce with every codec; keys, headers and timestamps round-trip.
	codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	ts := time.UnixMilli(1700000000123)
	want := map[string]*kgo.Record{}
	for name, codec := range codecs {
		cl := kafkaClient(t, s, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic("kt"))
		for i := 0; i < 20; i++ {
			r := &kgo.Record{Key: []byte(fmt.Sprintf("%s-%d", name, i)), Value: []byte(fmt.Sprintf("value %s %d", name, i)), Timestamp: ts.Add(time.Duration(i) * time.Millisecond),
				Headers: []kgo.RecordHeader{{Key: "codec", Value: []byte(name)}, {Key: "i", Value: []byte(fmt.Sprint(i))}}}
			want[string(r.Key)] = r
		}
		var recs []*kgo.Record
		for i := 0; i < 20; i++ {
			recs = append(recs, want[fmt.Sprintf("%s-%d", name, i)])
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", name, err)
		}
	}
	got := consumeN(t, s, "kt", len(want))
	for _, r := range got {
		w := want[string(r.Key)]
		if w == nil || string(r.Value) != string(w.Value) || !r.Timestamp.Equal(w.Timestamp) || len(r.Headers) != 2 ||
			r.Headers[0].Key != "codec" || string(r.Headers[0].Value) != string(w.Headers[0].Value) || string(r.Headers[1].Value) != string(w.Headers[1].Value) {
			t.Fatalf("record %q came back as %+v", r.Key, r)
		}
	}

	// Kafka produce → HTTP fetch.
	var f fetchResp
	tu.Do(t, "GET", fmt.Sprintf("%s/v1/topics/kt/partitions/%d/records?offset=earliest&max_records=1000", s.URL(), got[0].Partition), nil).JSON(t, &f)
	found := false
	for _, r := range f.Records {
		if r.Key != nil && *r.Key == string(got[0].Key) {
			found = r.Value == string(got[0].Value) && r.Headers["codec"] != "" && r.Timestamp == got[0].Timestamp.UnixMilli()
		}
	}
	if !found {
		t.Fatalf("HTTP fetch did not return %q as produced over Kafka: %+v", got[0].Key, f.Records)
	}

	// HTTP produce → Kafka consume.
	createTopic(t, s.URL(), "fromhttp", 1)
	r := tu.Do(t, "POST", s.URL()+"/v1/topics/fromhttp/records", map[string]any{"records": []map[string]any{{"key": "k", "value": "v", "headers": map[string]string{"h": "x"}}}})
	if r.Status != 200 {
		t.Fatalf("HTTP produce: %d %s", r.Status, r.Body)
	}
	hr := consumeN(t, s, "fromhttp", 1)[0]
	if string(hr.Key) != "k" || string(hr.Value) != "v" || len(hr.Headers) != 1 || hr.Headers[0].Key != "h" || string(hr.Headers[0].Value) != "x" {
		t.Fatalf("HTTP record over Kafka: %+v", hr)
	}

	// ListOffsets: earliest, latest, by time.
	p0 := got[0].Partition
	lo, err := adm.ListStartOffsets(ctx, "kt")
	if err != nil {
		t.Fatal(err)
	}
	le, err := adm.ListEndOffsets(ctx, "kt")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup("kt", p0); o.Offset != 0 {
		t.Fatalf("start offset %+v", o)
	}
	if o, _ := le.Lookup("kt", p0); o.Offset != int64(len(f.Records)) {
		t.Fatalf("end offset %+v, want %d", o, len(f.Records))
	}
	lt, err := adm.ListOffsetsAfterMilli(ctx, ts.Add(time.Hour).UnixMilli(), "kt")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lt.Lookup("kt", p0); o.Offset != int64(len(f.Records)) {
		t.Fatalf("offset after a future time: %+v", o)
	}

	// Delete.
	dr, err := adm.DeleteTopics(ctx, "fromhttp")
	if err != nil || dr["fromhttp"].Err != nil {
		t.Fatalf("delete: %v %+v", err, dr)
	}
}

// TestKafkaCreatePartitions: CreatePartitions grows a topic; a consumer
// group member consuming it before the growth is given the new partitions
// and reads a record produced to one; validate-only, shrinking, manual
// assignment and an unknown topic change nothing and get Kafka's codes.
func TestKafkaCreatePartitions(t *testing.T) {
	s := startKafkaNode(t)
	ctx := kctx(t)
	adm := kadm.NewClient(kafkaClient(t, s))
	if cr, err := adm.CreateTopic(ctx, 2, -1, nil, "grow"); err != nil || cr.Err != nil {
		t.Fatalf("create topic: %v %v", err, cr.Err)
	}
	consumer := kafkaClient(t, s, kgo.ConsumerGroup("g-grow"), kgo.ConsumeTopics("grow"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMaxAge(200*time.Millisecond), kgo.MetadataMinAge(50*time.Millisecond), kgo.HeartbeatInterval(200*time.Millisecond))
	producer := kafkaClient(t, s, kgo.DefaultProduceTopic("grow"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMaxAge(200*time.Millisecond), kgo.MetadataMinAge(50*time.Millisecond))
	consumed := func(value string) {
		t.Helper()
		for ctx.Err() == nil {
			fs := consumer.PollFetches(ctx)
			fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
			for _, r := range fs.Records() {
				if string(r.Value) == value {
					return
				}
			}
		}
		t.Fatalf("the group member never read %q", value)
	}
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("before"), Partition: 1}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	consumed("before") // the member has joined and owns both partitions

	if v, err := adm.ValidateCreatePartitions(ctx, 2, "grow"); err != nil || v["grow"].Err != nil {
		t.Fatalf("validate-only growth: %v %+v", err, v)
	}
	for _, c := range []struct {
		what  string
		set   int
		topic string
		want  error
	}{
		{"the same count", 2, "grow", kerr.InvalidPartitions},
		{"fewer", 1, "grow", kerr.InvalidPartitions},
		{"past the per-topic maximum", 5000, "grow", kerr.InvalidPartitions},
		{"an unknown topic", 3, "nosuch", kerr.UnknownTopicOrPartition},
	} {
		r, err := adm.UpdatePartitions(ctx, c.set, c.topic)
		if err != nil || r[c.topic].Err != c.want {
			t.Fatalf("%s: %v %+v, want %v", c.what, err, r, c.want)
		}
	}
	manual := kmsg.NewPtrCreatePartitionsRequest()
	mt := kmsg.NewCreatePartitionsRequestTopic()
	mt.Topic, mt.Count = "grow", 3
	mt.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{{Replicas: []int32{1}}}
	manual.Topics = append(manual.Topics, mt)
	if mr, err := manual.RequestWith(ctx, kafkaClient(t, s)); err != nil || len(mr.Topics) != 1 || mr.Topics[0].ErrorCode != kerr.InvalidReplicaAssignment.Code {
		t.Fatalf("manual assignment: %v %+v, want INVALID_REPLICA_ASSIGNMENT", err, mr)
	}
	td, err := adm.ListTopics(ctx, "grow")
	if err != nil || len(td["grow"].Partitions) != 2 {
		t.Fatalf("after refused growths: %v, %d partitions, want 2", err, len(td["grow"].Partitions))
	}

	cp, err := adm.CreatePartitions(ctx, 2, "grow") // adds 2: 4 in all
	if err != nil || cp["grow"].Err != nil {
		t.Fatalf("create 2 partitions: %v %+v", err, cp)
	}
	var meta struct {
		Partitions []struct {
			Partition int    `json:"partition"`
			Leader    uint64 `json:"leader"`
		} `json:"partitions"`
	}
	tu.Do(t, "GET", s.URL()+"/v1/topics/grow", nil).JSON(t, &meta)
	if len(meta.Partitions) != 4 || meta.Partitions[3].Leader == 0 {
		t.Fatalf("over HTTP after growth: %+v, want 4 partitions with leaders", meta.Partitions)
	}
	tu.Eventually(t, 30*time.Second, "the producer to see partition 3", func() bool {
		return producer.ProduceSync(ctx, &kgo.Record{Value: []byte("after"), Partition: 3}).FirstErr() == nil
	})
	consumed("after") // the member was given the new partitions
	if r := tu.Do(t, "POST", s.URL()+"/v1/topics/grow/partitions", map[string]any{"partitions": 4}); r.Status != 400 {
		t.Fatalf("HTTP growth to the same count: %d %s, want 400", r.Status, r.Body)
	}
}

func TestKafkaIdempotentProducer(t *testing.T) {
	s := startKafkaNode(t)
	ctx := kctx(t)
	createTopic(t, s.URL(), "idem", 1)
	cl := kafkaClient(t, s, kgo.DefaultProduceTopic("idem"), kgo.MaxBufferedRecords(100))
	for i := 0; i < 50; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The same batch again (what a retry after a lost response sends):
	// Weir answers with the original offset and appends nothing.
	id, epoch, _ := cl.ProducerID(ctx)
	if id < 0 {
		t.Fatalf("no producer id: %d %d", id, epoch)
	}
	var f fetchResp
	tu.Do(t, "GET", s.URL()+"/v1/topics/idem/partitions/0/records?offset=earliest&max_records=1000", nil).JSON(t, &f)
	if len(f.Records) != 50 {
		t.Fatalf("%d records, want 50", len(f.Records))
	}
	for i, r := range f.Records {
		if r.Value != fmt.Sprint(i) {
			t.Fatalf("record %d is %q", i, r.Value)
		}
	}
}

func TestKafkaConsumerGroup(t *testing.T) {
	s := startKafkaNode(t)
	ctx := kctx(t)
	createTopic(t, s.URL(), "gt", 4)
	pr := kafkaClient(t, s, kgo.DefaultProduceTopic("gt"))
	const n = 200
	member := func() *kgo.Client {
		return kafkaClient(t, s, kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("gt"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(), kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(200*time.Millisecond))
	}
	seen := map[string]bool{}
	poll := func(cl *kgo.Client) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		fs := cl.PollFetches(pctx)
		for _, r := range fs.Records() {
			seen[string(r.Value)] = true
		}
		if len(fs.Records()) > 0 {
			if err := cl.CommitRecords(ctx, fs.Records()...); err != nil {
				t.Logf("commit: %v", err) // a rebalance may refuse it; the records come again
			}
		}
	}
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			pr.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}, nil)
		}
		if err := pr.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	consume := func(want int, members ...*kgo.Client) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for len(seen) < want && time.Now().Before(deadline) {
			for _, m := range members {
				poll(m)
			}
		}
		if len(seen) != want {
			t.Fatalf("the group saw %d of %d records", len(seen), want)
		}
	}
	adm := kadm.NewClient(kafkaClient(t, s))
	// stable waits until the group is stable with exactly these members,
	// each owning partitions and all 4 owned once.
	stable := func(members ...*kgo.Client) {
		t.Helper()
		tu.Eventually(t, 30*time.Second, fmt.Sprintf("%d members sharing the 4 partitions", len(members)), func() bool {
			for _, m := range members {
				poll(m)
			}
			dg, err := adm.DescribeGroups(ctx, "g1")
			if err != nil {
				return false
			}
			g := dg["g1"]
			if g.State != "Stable" || len(g.Members) != len(members) {
				return false
			}
			owned := 0
			for _, m := range g.Members {
				ca, ok := m.Assigned.AsConsumer()
				if !ok || len(ca.Topics) == 0 || len(ca.Topics[0].Partitions) == 0 {
					return false
				}
				owned += len(ca.Topics[0].Partitions)
			}
			return owned == 4
		})
	}
	produce(0, n)
	// Members come: one reads half, two more join and the three finish.
	a := member()
	for len(seen) < n/2 && ctx.Err() == nil {
		poll(a)
	}
	b, c := member(), member()
	consume(n, a, b, c)
	stable(a, b, c)
	// A member goes: the other two take its partitions and read what follows.
	c.LeaveGroup()
	stable(a, b)
	produce(n, 2*n)
	consume(2*n, a, b)

	// Committed offsets are Weir's group offsets: visible over HTTP.
	var or struct {
		Offsets []struct {
			Topic     string `json:"topic"`
			Partition int    `json:"partition"`
			Offset    int64  `json:"offset"`
		} `json:"offsets"`
	}
	var total int64
	tu.Eventually(t, 30*time.Second, "every record's offset committed, as seen over HTTP", func() bool {
		poll(a) // a commit a rebalance refused is made when the records come again
		poll(b)
		tu.Do(t, "GET", s.URL()+"/v1/groups/g1/offsets?topic=gt", nil).JSON(t, &or)
		total = 0
		for _, o := range or.Offsets {
			total += o.Offset
		}
		return total == 2*n
	})
	// And an HTTP commit is what Kafka's OffsetFetch returns.
	r := tu.Do(t, "POST", s.URL()+"/v1/groups/g2/offsets", map[string]any{"offsets": []map[string]any{{"topic": "gt", "partition": 1, "offset": 7}}})
	if r.Status/100 != 2 {
		t.Fatalf("HTTP commit: %d %s", r.Status, r.Body)
	}
	fo, err := adm.FetchOffsets(ctx, "g2")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fo.Lookup("gt", 1); !ok || o.At != 7 {
		t.Fatalf("OffsetFetch after an HTTP commit: %+v %v", o, ok)
	}
	lg, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := lg.Groups()
	sort.Strings(names)
	if len(names) == 0 || names[0] != "g1" {
		t.Fatalf("groups %v", names)
	}
}

// TestKafkaFetchBoundedByBytes: a Kafka Fetch is bounded by bytes only, as
// in Kafka. It was also cut at the HTTP fetch's default of 500 records per
// partition, which halved what a franz-go consumer got per round trip.
func TestKafkaFetchBoundedByBytes(t *testing.T) {
	s := startKafkaNode(t)
	u := s.URL()
	createTopic(t, u, "many", 1)
	for i := 0; i < 3; i++ {
		produceN(t, u, "many", 500, 0, "r-")
	}
	cl := kafkaClient(t, s)
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 1000, 1, 50<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "many"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, 0, 10<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kr, err := req.RequestWith(kctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	p := kr.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch error %d", p.ErrorCode)
	}
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "many", Partition: 0}, &p, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil || len(fp.Records) != 1500 {
		t.Fatalf("one fetch of a 10 MiB partition budget: %d records, err %v; want all 1,500", len(fp.Records), fp.Err)
	}
}

// TestKafkaFetchManyPartitions: a Fetch of several partitions answers each
// from its own offset within its PartitionMaxBytes. When their limits fit
// in the request's MaxBytes the partitions are read at once; when they do
// not, in order, each with what the ones before left, and the answer stays
// within MaxBytes give or take a record (a partition read with any room
// left returns at least one).
func TestKafkaFetchManyPartitions(t *testing.T) {
	s := startKafkaNode(t)
	u := s.URL()
	createTopic(t, u, "mp", 3)
	pad := strings.Repeat("x", 1000)
	for p := 0; p < 3; p++ {
		produceN(t, u, "mp", 200, p, fmt.Sprintf("%s-p%d-", pad, p))
	}
	cl := kafkaClient(t, s)
	fetch := func(maxBytes int32) (records [3][]*kgo.Record, bytes int) {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 1000, 1, maxBytes
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "mp"
		for p := int32(0); p < 3; p++ {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, int64(10*p), 64<<10
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		kr, err := req.RequestWith(kctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		for i := range kr.Topics[0].Partitions {
			p := &kr.Topics[0].Partitions[i]
			if p.ErrorCode != 0 {
				t.Fatalf("partition %d: error %v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
			bytes += len(p.RecordBatches)
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "mp", Partition: p.Partition}, p, kgo.DefaultDecompressor(), nil)
			if fp.Err != nil {
				t.Fatalf("partition %d: %v", p.Partition, fp.Err)
			}
			for j, r := range fp.Records {
				want := fmt.Sprintf("%s-p%d-%d", pad, p.Partition, 10*int(p.Partition)+j)
				if r.Offset != int64(10*int(p.Partition)+j) || string(r.Value) != want {
					t.Fatalf("partition %d record %d: offset %d, value ...%q; want offset %d", p.Partition, j, r.Offset, r.Value[len(pad):], 10*int(p.Partition)+j)
				}
			}
			records[p.Partition] = fp.Records
			if len(p.RecordBatches) > 64<<10+2<<10 {
				t.Errorf("partition %d: %d bytes, PartitionMaxBytes is 64 KiB", p.Partition, len(p.RecordBatches))
			}
		}
		return records, bytes
	}
	// 3 × 64 KiB fit in 1 MiB: every partition gets records.
	recs, _ := fetch(1 << 20)
	for p, rs := range recs {
		if len(rs) < 30 {
			t.Errorf("MaxBytes 1 MiB: partition %d got %d records, want a 64 KiB share (~60)", p, len(rs))
		}
	}
	// More partitions than the reading goroutines: every one is read.
	createTopic(t, u, "mp20", 20)
	for p := 0; p < 20; p++ {
		produceN(t, u, "mp20", 1, p, fmt.Sprintf("p%d-", p))
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 1000, 1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "mp20"
	for p := int32(0); p < 20; p++ {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = p, 4<<10
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	kr, err := req.RequestWith(kctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	for i := range kr.Topics[0].Partitions {
		p := &kr.Topics[0].Partitions[i]
		fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "mp20", Partition: p.Partition}, p, kgo.DefaultDecompressor(), nil)
		if p.ErrorCode != 0 || fp.Err != nil || len(fp.Records) != 1 || string(fp.Records[0].Value) != fmt.Sprintf("p%d-0", p.Partition) {
			t.Errorf("mp20 partition %d: error %v %v, %d records; want its one record", p.Partition, kerr.ErrorForCode(p.ErrorCode), fp.Err, len(fp.Records))
		}
	}
	// 100 KiB: the first partition's 64 KiB, the second what is left, the
	// third at most the record that goes past.
	recs, n := fetch(100 << 10)
	if len(recs[0]) < 30 || len(recs[1]) == 0 || len(recs[1]) >= len(recs[0]) || len(recs[2]) > 1 || n > 100<<10+2<<10 {
		t.Errorf("MaxBytes 100 KiB: %d, %d and %d records, %d bytes; want ~60, fewer, at most one, within 100 KiB and a record", len(recs[0]), len(recs[1]), len(recs[2]), n)
	}
}

// compression.type=producer: a batch its producer compressed is kept
// compressed in the Raft log and the segments, one it sent plain stays
// plain, and both read back the same over Kafka and HTTP.
func TestKafkaCompressedBatchesStayCompressed(t *testing.T) {
	s := startKafkaNode(t)
	ctx := kctx(t)
	const n, size = 200, 1024
	stored := map[string]int64{}
	for name, codec := range map[string]kgo.CompressionCodec{"plain": kgo.NoCompression(), "snappy": kgo.SnappyCompression(), "zstd": kgo.ZstdCompression()} {
		topic := "cz-" + name
		createTopic(t, s.URL(), topic, 1)
		cl := kafkaClient(t, s, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Minute))
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(strings.Repeat(fmt.Sprintf("%s %d ", name, i), size)[:size])}
		}
		// One batch: the records wait for Flush (the linger is long).
		errs := make(chan error, n)
		for _, r := range recs {
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) { errs <- err })
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for range recs {
			if err := <-errs; err != nil {
				t.Fatalf("produce %s: %v", name, err)
			}
		}
		stored[name] = storedBytes(t, s, topic)
		got := consumeN(t, s, topic, n)
		for i, r := range got {
			if string(r.Key) != fmt.Sprint(i) || string(r.Value) != string(recs[i].Value) {
				t.Fatalf("%s: offset %d came back as %q=%.20q…", name, i, r.Key, r.Value)
			}
		}
		var f fetchResp
		tu.Do(t, "GET", s.URL()+"/v1/topics/"+topic+"/partitions/0/records?offset=100&max_records=1", nil).JSON(t, &f)
		if len(f.Records) != 1 || f.Records[0].Value != string(recs[100].Value) {
			t.Fatalf("%s: HTTP fetch of offset 100: %+v", name, f.Records)
		}
	}
	if stored["plain"] < n*size {
		t.Fatalf("a plain batch of %d bytes of values is stored in %d bytes", n*size, stored["plain"])
	}
	for _, name := range []string{"snappy", "zstd"} {
		if stored[name] > stored["plain"]/2 {
			t.Fatalf("a %s batch is stored in %d bytes, the same plain in %d: not compressed", name, stored[name], stored["plain"])
		}
	}
}

// A topic's compression setting, over HTTP and Kafka: s2 stores an HTTP
// producer's batches compressed, uncompressed stores a compressing Kafka
// producer's plain, and both report the setting back.
func TestTopicCompressionSetting(t *testing.T) {
	s := startKafkaNode(t)
	ctx := kctx(t)
	val := strings.Repeat("an HTTP value ", 80)

	if r := tu.Do(t, "POST", s.URL()+"/v1/topics", map[string]any{"name": "hz", "compression": "zstd"}); r.Status != 400 {
		t.Fatalf("compression zstd over HTTP: %d %s, want 400", r.Status, r.Body)
	}
	for _, setting := range []string{"s2", "producer"} {
		topic := "h-" + setting
		var created struct {
			Compression string `json:"compression"`
		}
		r := tu.Do(t, "POST", s.URL()+"/v1/topics", map[string]any{"name": topic, "compression": setting})
		if r.Status != 201 {
			t.Fatalf("create %s: %d %s", topic, r.Status, r.Body)
		}
		r.JSON(t, &created)
		if created.Compression != setting {
			t.Fatalf("topic %s reports compression %q", topic, created.Compression)
		}
		recs := make([]map[string]any, 100)
		for i := range recs {
			recs[i] = map[string]any{"value": val}
		}
		if r := tu.Do(t, "POST", s.URL()+"/v1/topics/"+topic+"/records", map[string]any{"records": recs}); r.Status != 200 {
			t.Fatalf("produce to %s: %d %s", topic, r.Status, r.Body)
		}
		var f fetchResp
		tu.Do(t, "GET", s.URL()+"/v1/topics/"+topic+"/partitions/0/records?offset=99", nil).JSON(t, &f)
		if len(f.Records) != 1 || f.Records[0].Value != val {
			t.Fatalf("%s: fetch of offset 99: %+v", topic, f.Records)
		}
		n, plain := storedBytes(t, s, topic), int64(100*len(val))
		if compressed := n < plain/4; compressed != (setting == "s2") {
			t.Fatalf("compression %s: an HTTP batch of %d bytes of values is stored in %d", setting, plain, n)
		}
	}

	adm := kadm.NewClient(kafkaClient(t, s))
	if cr, _ := adm.CreateTopic(ctx, 1, -1, map[string]*string{"compression.type": kadm.StringPtr("zstd")}, "kz"); cr.Err != kerr.InvalidConfig || !strings.Contains(cr.ErrMessage, "S2 only") {
		t.Fatalf("compression.type=zstd: %v %q, want INVALID_CONFIG saying why", cr.Err, cr.ErrMessage)
	}
	if cr, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"compression.type": kadm.StringPtr("uncompressed")}, "ku"); err != nil || cr.Err != nil {
		t.Fatalf("compression.type=uncompressed: %v %v", err, cr.Err)
	}
	if v := describedConfig(t, adm, "ku", "compression.type"); v != "uncompressed" {
		t.Fatalf("compression.type described as %q", v)
	}
	cl := kafkaClient(t, s, kgo.ProducerBatchCompression(kgo.SnappyCompression()), kgo.DefaultProduceTopic("ku"))
	krecs := make([]*kgo.Record, 100)
	for i := range krecs {
		krecs[i] = &kgo.Record{Value: []byte(val)}
	}
	if err := cl.ProduceSync(ctx, krecs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if n := storedBytes(t, s, "ku"); n < int64(100*len(val)) {
		t.Fatalf("compression.type=uncompressed: a snappy producer's %d bytes of values are stored in %d", 100*len(val), n)
	}
}
