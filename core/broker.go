package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BrokerConfig tunes the domain rules. Zero values take the defaults named.
type BrokerConfig struct {
	DefaultRetentionMs int64         // default 7 days; -1: forever
	MaxPartitions      int           // per topic; default 1024
	MaxBatchRecords    int           // records per produce request; default 10,000
	MaxHeaders         int           // headers per record; default 64
	MaxHeaderBytes     int           // bytes of all headers of a record; default 64 KiB
	MaxRecordBytes     int           // key+value+headers of one record; default 8 MiB
	MaxFetchRecords    int           // default 10,000
	MaxFetchBytes      int           // default 16 MiB
	MaxWait            time.Duration // longest long-poll; default 60 s
	RetentionInterval  time.Duration // how often the leader checks retention; default 30 s
	MaxUnackedProduces int           // acks=none produces in flight; default 1024
	// ProposalsInFlight bounds, per partition, the produce proposals in
	// flight at once. Produces that arrive while all are busy wait and go
	// together into the next proposal (group commit: one Raft entry for
	// all of them, each answered with its own offsets); one that finds a
	// slot free is proposed at once. Idempotent produces are never merged.
	// Default 1 (the most merging; docs/RATIONALE.md, "Group commit of
	// produces"); -1: no merging, every produce its own proposal.
	ProposalsInFlight int
	Logger            *slog.Logger
	// Telemetry receives traces and metrics; nil: a Telemetry with tracing
	// off and NoMetrics.
	Telemetry *Telemetry
}

// Validate reports a configuration that cannot be meant: a negative count,
// size or duration (zero takes the default; only DefaultRetentionMs may be
// -1, forever). NewBroker calls it and returns its error.
func (c *BrokerConfig) Validate() error {
	if c.DefaultRetentionMs < -1 {
		return fmt.Errorf("core: BrokerConfig.DefaultRetentionMs is %d: it must be ≥ -1 (-1: forever, 0: the default)", c.DefaultRetentionMs)
	}
	if c.ProposalsInFlight < -1 {
		return fmt.Errorf("core: BrokerConfig.ProposalsInFlight is %d: it must be ≥ -1 (-1: no merging, 0: the default)", c.ProposalsInFlight)
	}
	return negative("BrokerConfig",
		intField("MaxPartitions", c.MaxPartitions),
		intField("MaxBatchRecords", c.MaxBatchRecords),
		intField("MaxHeaders", c.MaxHeaders),
		intField("MaxHeaderBytes", c.MaxHeaderBytes),
		intField("MaxRecordBytes", c.MaxRecordBytes),
		intField("MaxFetchRecords", c.MaxFetchRecords),
		intField("MaxFetchBytes", c.MaxFetchBytes),
		durField("MaxWait", c.MaxWait),
		durField("RetentionInterval", c.RetentionInterval),
		intField("MaxUnackedProduces", c.MaxUnackedProduces),
	)
}

// configField is a numeric Config field checked by a Validate method.
type configField struct {
	name string
	v    int64
	dur  bool
}

func intField(name string, v int) configField { return configField{name: name, v: int64(v)} }

func durField(name string, d time.Duration) configField {
	return configField{name: name, v: int64(d), dur: true}
}

// negative returns an error naming the first negative field of config
// (zero means the default there), or nil.
func negative(config string, fields ...configField) error {
	for _, f := range fields {
		if f.v >= 0 {
			continue
		}
		v := strconv.FormatInt(f.v, 10)
		if f.dur {
			v = time.Duration(f.v).String()
		}
		return fmt.Errorf("core: %s.%s is %s: it must not be negative (0 takes the default)", config, f.name, v)
	}
	return nil
}

func (c *BrokerConfig) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.DefaultRetentionMs == 0 {
		c.DefaultRetentionMs = 7 * 24 * 3600 * 1000
	}
	def(&c.MaxPartitions, 1024)
	def(&c.MaxBatchRecords, 10000)
	def(&c.MaxHeaders, 64)
	def(&c.MaxHeaderBytes, 64<<10)
	def(&c.MaxRecordBytes, 8<<20)
	def(&c.MaxFetchRecords, 10000)
	def(&c.MaxFetchBytes, 16<<20)
	def(&c.MaxUnackedProduces, 1024)
	if c.ProposalsInFlight == 0 {
		c.ProposalsInFlight = 1
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 60 * time.Second
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Telemetry == nil {
		c.Telemetry = NewTelemetry(TelemetryConfig{}) // tracing off, NoMetrics
	}
}

// Broker is the domain service the gateway talks to: produce with partition
// choice and idempotence, fetch with long-poll, group offsets, retention.
// It is safe for concurrent use.
type Broker struct {
	cfg   BrokerConfig
	store Store

	rrMu sync.Mutex
	rr   map[string]*atomic.Uint64 // round-robin counters per topic

	unacked atomic.Int64
	commit  *committer // group commit of produces (commit.go)

	endWaits     chan struct{} // closed by EndWaits
	endWaitsOnce sync.Once
}

// NewBroker returns a broker over store, or cfg.Validate's error.
func NewBroker(store Store, cfg BrokerConfig) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Broker{cfg: cfg, store: store, rr: map[string]*atomic.Uint64{}, endWaits: make(chan struct{}),
		commit: newCommitter(cfg.ProposalsInFlight, cfg.MaxBatchRecords, cfg.Telemetry)}, nil
}

// EndWaits ends every long poll now waiting or started later — fetches,
// group polls, queue receives — as if its wait had run out: each answers
// with what it has (often nothing), at once. A node calls it first when it
// shuts down, so that its front doors can drain their requests promptly
// instead of waiting out clients' wait_ms.
func (b *Broker) EndWaits() { b.endWaitsOnce.Do(func() { close(b.endWaits) }) }

// WaitsEnded is closed once EndWaits was called.
func (b *Broker) WaitsEnded() <-chan struct{} { return b.endWaits }

// Telemetry returns the node's telemetry (never nil).
func (b *Broker) Telemetry() *Telemetry { return b.cfg.Telemetry }

// Store returns the store the broker runs on.
func (b *Broker) Store() Store { return b.store }

// Config returns the effective configuration.
func (b *Broker) Config() BrokerConfig { return b.cfg }

// ValidTopicName reports whether name is 1–249 of [A-Za-z0-9._-].
func ValidTopicName(name string) bool {
	if len(name) == 0 || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// CreateTopic validates cfg, fills defaults and creates the topic.
// Zero Partitions means 1, zero ReplicationFactor min(3, nodes), zero
// RetentionMs 7 days, zero RetentionBytes no limit.
func (b *Broker) CreateTopic(ctx context.Context, cfg TopicConfig) (TopicInfo, error) {
	if !ValidTopicName(cfg.Name) {
		return TopicInfo{}, Invalidf("topic name %q must be 1–249 characters of [A-Za-z0-9._-]", cfg.Name)
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 1
	}
	if cfg.Partitions < 0 || cfg.Partitions > b.cfg.MaxPartitions {
		return TopicInfo{}, Invalidf("partitions must be between 1 and %d", b.cfg.MaxPartitions)
	}
	nodes := b.store.NodeCount()
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = min(3, nodes)
	}
	if cfg.ReplicationFactor < 0 || cfg.ReplicationFactor > nodes {
		return TopicInfo{}, Invalidf("replication_factor must be between 1 and the node count %d", nodes)
	}
	if cfg.RetentionMs == 0 {
		cfg.RetentionMs = b.cfg.DefaultRetentionMs
	}
	if cfg.RetentionBytes == 0 {
		cfg.RetentionBytes = -1
	}
	if cfg.RetentionMs < -1 || cfg.RetentionBytes < -1 {
		return TopicInfo{}, Invalidf("retention_ms and retention_bytes must be positive or -1 (no limit)")
	}
	if cfg.Compression == "" {
		cfg.Compression = CompressionProducer
	}
	if err := checkStorageConfig(cfg); err != nil {
		return TopicInfo{}, err
	}
	return b.store.CreateTopic(ctx, cfg)
}

// Bounds of a topic's segment_bytes.
const (
	MinSegmentBytes = 1 << 10
	MaxSegmentBytes = 1 << 30
)

// checkStorageConfig validates a topic's compression, segment size and
// local retention (the store checks that tiered storage is configured).
func checkStorageConfig(cfg TopicConfig) error {
	switch cfg.Compression {
	case "", CompressionProducer, CompressionS2, CompressionUncompressed:
	default:
		return Invalidf("compression must be %q, %q or %q, not %q", CompressionProducer, CompressionS2, CompressionUncompressed, cfg.Compression)
	}
	if cfg.SegmentBytes != 0 && (cfg.SegmentBytes < MinSegmentBytes || cfg.SegmentBytes > MaxSegmentBytes) {
		return Invalidf("segment_bytes must be between %d and %d", MinSegmentBytes, MaxSegmentBytes)
	}
	if cfg.LocalRetentionMs < -1 || cfg.LocalRetentionBytes < -1 {
		return Invalidf("local_retention_ms and local_retention_bytes must be positive or -1 (as long as the topic's retention)")
	}
	if !cfg.Tiered && (cfg.LocalRetentionMs != 0 || cfg.LocalRetentionBytes != 0) {
		return Invalidf("local_retention_ms and local_retention_bytes apply to tiered topics only (\"tiered\": true)")
	}
	return nil
}

// AddPartitions grows a topic to count partitions in all, as Kafka's
// CreatePartitions does: the new partitions start empty, with the topic's
// replication factor and settings, and take records at once. Records
// already written stay where they are, so a key hashed to a partition
// before may hash to another after (the same as on Kafka). A mirror topic
// not yet promoted is refused (*MirrorError): its partitions follow its
// source's, which its link grows (GrowMirror).
func (b *Broker) AddPartitions(ctx context.Context, topic string, count int) (TopicInfo, error) {
	if err := b.CheckAddPartitions(topic, count); err != nil {
		return TopicInfo{}, err
	}
	return b.store.AddPartitions(ctx, topic, count)
}

// CheckAddPartitions reports what AddPartitions would refuse now, without
// growing anything (Kafka's validate-only): ErrTopicNotFound, a mirror not
// yet promoted (*MirrorError), or ErrBadRequest for a count not above the
// topic's or above MaxPartitions.
func (b *Broker) CheckAddPartitions(topic string, count int) error {
	t, err := b.store.Topic(topic)
	if err != nil {
		return err
	}
	if err := CheckWritable(b.store, t); err != nil {
		return err
	}
	return b.checkGrowth(t, count)
}

// GrowMirror is AddPartitions without the mirror check: a link calls it
// to follow its source topic's growth.
func (b *Broker) GrowMirror(ctx context.Context, topic string, count int) (TopicInfo, error) {
	t, err := b.store.Topic(topic)
	if err != nil {
		return TopicInfo{}, err
	}
	if err := b.checkGrowth(t, count); err != nil {
		return TopicInfo{}, err
	}
	return b.store.AddPartitions(ctx, topic, count)
}

// checkGrowth refuses a new partition count not above t's or above
// MaxPartitions. The store checks the count again when it applies the
// growth (a concurrent one may have come first).
func (b *Broker) checkGrowth(t TopicInfo, count int) error {
	if count <= t.Partitions || count > b.cfg.MaxPartitions {
		return Invalidf("topic %q has %d partitions: the new count must be above that and at most %d", t.Name, t.Partitions, b.cfg.MaxPartitions)
	}
	return nil
}

// DeleteTopic deletes a topic and all its data.
// A mirror topic's mark goes with it (link.go).
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if err := b.store.DeleteTopic(ctx, name); err != nil {
		return err
	}
	if _, ok := b.store.CatalogGet(MirrorsTable, name); ok {
		if _, err := b.store.CatalogDelete(ctx, MirrorsTable, name, CatalogCond{}); err != nil {
			return err
		}
	}
	return nil
}

// Topic returns the topic with its partitions' placement and offsets.
func (b *Broker) Topic(name string) (TopicInfo, []PartitionInfo, error) {
	t, err := b.store.Topic(name)
	if err != nil {
		return t, nil, err
	}
	parts := make([]PartitionInfo, 0, t.Partitions)
	for p := 0; p < t.Partitions; p++ {
		pi, err := b.store.PartitionInfo(name, p)
		if err != nil {
			return t, nil, err
		}
		parts = append(parts, pi)
	}
	return t, parts, nil
}

// ProduceRecord is one record of a produce request with its target partition
// (-1: chosen by key hash, else round robin).
type ProduceRecord struct {
	Record
	Partition int
}

// ProduceRequest is one produce call.
type ProduceRequest struct {
	Topic   string
	Records []ProduceRecord
	// ProducerID and Sequence make the produce idempotent: Sequence numbers
	// the first record, and each producer's sequences are dense per
	// partition. An idempotent request must go to one partition.
	ProducerID string
	Sequence   int64
	// Compress is AppendBatch.Compress for the request's batches, honoured
	// where the request is appended (not on a request forwarded to the
	// partition's leader).
	Compress bool
}

// RecordOffset is where one produced record landed.
type RecordOffset struct {
	Partition int
	Offset    int64
}

// ProduceResult lists offsets in request order.
type ProduceResult struct {
	Offsets   []RecordOffset
	Duplicate bool // the request retried an already appended batch
}

// Produce validates the request, chooses partitions, appends one batch per
// partition (in parallel) and returns once every batch is committed.
//
// It runs in a weir.produce span (a child of the span in ctx, else of the
// first record's traceparent) and, when that span is sampled, writes its
// trace context into the traceparent header of records that have none.
func (b *Broker) Produce(ctx context.Context, req *ProduceRequest) (*ProduceResult, error) {
	return b.produceTraced(ctx, req, false)
}

// produceTraced is Produce; checked says the records were validated
// already (ProduceNoAck validates before it answers).
func (b *Broker) produceTraced(ctx context.Context, req *ProduceRequest, checked bool) (*ProduceResult, error) {
	tel := b.cfg.Telemetry
	start := time.Now()
	ctx, span := tel.startProduce(ctx, req)
	res, err := b.produce(ctx, req, checked)
	tel.produced(ctx, req, err, time.Since(start))
	EndSpan(span, err)
	return res, err
}

func (b *Broker) produce(ctx context.Context, req *ProduceRequest, checked bool) (*ProduceResult, error) {
	groups, err := b.planProduce(ctx, req, checked)
	if err != nil {
		return nil, err
	}
	return b.appendGroups(ctx, req, groups)
}

// QueueProduce is Produce for a caller that keeps several produces in
// flight and needs them in the log in the order it made them (a Kafka
// connection's pipelined produce requests). req must go to one partition.
// It is validated, and where the partition's log can queue an append
// (AppendProposer: this node leads it) the batch is queued before
// QueueProduce returns, after every batch queued before it; wait then
// returns what Produce would. Where it cannot, QueueProduce produces
// synchronously (forwarding, retrying as Produce does) and wait returns
// that outcome, so the order holds either way. An error from QueueProduce
// itself means nothing was written.
func (b *Broker) QueueProduce(ctx context.Context, req *ProduceRequest) (wait func(context.Context) (*ProduceResult, error), err error) {
	tel := b.cfg.Telemetry
	start := time.Now()
	sctx, span := tel.startProduce(ctx, req)
	finish := func(res *ProduceResult, err error) (*ProduceResult, error) {
		tel.produced(sctx, req, err, time.Since(start))
		EndSpan(span, err)
		return res, err
	}
	done := func(res *ProduceResult, err error) func(context.Context) (*ProduceResult, error) {
		return func(context.Context) (*ProduceResult, error) { return res, err }
	}
	groups, err := b.planProduce(sctx, req, false)
	if err == nil && len(groups) > 1 {
		err = Invalidf("a queued produce must target one partition; this one spans %d", len(groups))
	}
	if err != nil {
		_, err = finish(nil, err)
		return nil, err
	}
	g := groups[0]
	log, err := b.store.Partition(req.Topic, g.p)
	if err != nil {
		_, err = finish(nil, err)
		return nil, err
	}
	batch := &AppendBatch{ProducerID: req.ProducerID, Sequence: req.Sequence, Timestamp: time.Now().UnixMilli(), Records: g.recs, Compress: req.Compress}
	if ap, ok := log.(AppendProposer); ok {
		w, qerr := tel.ProposeAppend(sctx, ap, req.Topic, g.p, batch)
		switch {
		case qerr == nil:
			return func(ctx context.Context) (*ProduceResult, error) {
				ar, err := w(ctx)
				if err != nil {
					return finish(nil, err)
				}
				res := &ProduceResult{Offsets: make([]RecordOffset, len(req.Records)), Duplicate: ar.Duplicate}
				g.place(res, ar.BaseOffset)
				return finish(res, nil)
			}, nil
		case errors.Is(qerr, ErrTooLarge) || errors.Is(qerr, ErrBadRequest):
			_, err = finish(nil, qerr)
			return nil, err
		}
	}
	// Not queueable here: the synchronous path, which forwards and retries.
	return done(finish(b.appendGroups(sctx, req, groups))), nil
}

// planProduce validates req, chooses each record's partition and groups
// the records by partition, in request order within each group.
func (b *Broker) planProduce(ctx context.Context, req *ProduceRequest, checked bool) ([]*produceGroup, error) {
	t, err := b.store.Topic(req.Topic)
	if err != nil {
		return nil, err
	}
	if err := CheckWritable(b.store, t); err != nil { // a mirror topic (link.go)
		return nil, err
	}
	if len(req.Records) == 0 {
		return nil, Invalidf("a produce request needs at least one record")
	}
	if len(req.Records) > b.cfg.MaxBatchRecords {
		return nil, fmt.Errorf("%w: %d records in one request, the limit is %d", ErrTooLarge, len(req.Records), b.cfg.MaxBatchRecords)
	}
	if req.ProducerID != "" && req.Sequence < 0 {
		return nil, Invalidf("sequence must be ≥ 0")
	}
	// Choose partitions and validate records.
	parts := make([]int, len(req.Records))
	var rrBase uint64
	rrUsed := false
	for i := range req.Records {
		r := &req.Records[i]
		if !checked {
			if err := b.checkRecord(&r.Record); err != nil {
				return nil, err
			}
		}
		p := r.Partition
		switch {
		case p >= 0:
			if p >= t.Partitions {
				return nil, fmt.Errorf("%w: topic %q has %d partitions, no partition %d", ErrPartitionNotFound, req.Topic, t.Partitions, p)
			}
		case r.Key != nil:
			p = KeyPartition(r.Key, t.Partitions)
		default:
			if !rrUsed {
				// One round-robin step per request keeps a request's keyless
				// records in one batch (one Raft entry), like Kafka's sticky partitioner.
				rrBase = b.nextRR(req.Topic)
				rrUsed = true
			}
			p = int(rrBase % uint64(t.Partitions))
		}
		parts[i] = p
	}
	b.cfg.Telemetry.stampProduce(ctx, req)
	// Group by partition, keeping request order inside each group.
	var groups []*produceGroup
	byPart := map[int]*produceGroup{}
	for i, p := range parts {
		g := byPart[p]
		if g == nil {
			g = &produceGroup{p: p}
			byPart[p] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
		g.recs = append(g.recs, req.Records[i].Record)
	}
	if req.ProducerID != "" && len(groups) > 1 {
		return nil, Invalidf("an idempotent produce (producer_id) must target one partition; this one spans %d", len(groups))
	}
	return groups, nil
}

// produceGroup is the records of a produce that go to one partition:
// their indexes in the request and the records, in request order.
type produceGroup struct {
	p    int
	idx  []int
	recs []Record
}

// place sets the offsets of g's records in res, its batch committed at base.
func (g *produceGroup) place(res *ProduceResult, base int64) {
	for j, i := range g.idx {
		res.Offsets[i] = RecordOffset{Partition: g.p, Offset: base + int64(j)}
	}
}

// appendGroups appends one batch per partition (in parallel) and waits
// for all. With several partitions each commits or fails on its own: a
// partial failure is a *ProduceError that keeps the committed partitions'
// offsets, so a retry resends only what failed.
func (b *Broker) appendGroups(ctx context.Context, req *ProduceRequest, groups []*produceGroup) (*ProduceResult, error) {
	now := time.Now().UnixMilli()
	res := &ProduceResult{Offsets: make([]RecordOffset, len(req.Records))}
	var outcome []PartitionProduce // per partition, when there are several
	if len(groups) > 1 {
		outcome = make([]PartitionProduce, len(groups))
	}
	failed := each(len(groups), func(gi int) error {
		g := groups[gi]
		log, err := b.store.Partition(req.Topic, g.p)
		var ar AppendResult
		if err == nil {
			ar, err = b.commit.append(ctx, log, req.Topic, g.p, &AppendBatch{ProducerID: req.ProducerID, Sequence: req.Sequence, Timestamp: now, Records: g.recs, Compress: req.Compress})
		}
		if outcome != nil {
			outcome[gi] = PartitionProduce{Partition: g.p, Records: g.idx, BaseOffset: ar.BaseOffset, Err: err}
		}
		if err != nil {
			return err
		}
		if len(groups) == 1 { // an idempotent produce: one partition, run inline
			res.Duplicate = ar.Duplicate
		}
		g.place(res, ar.BaseOffset)
		return nil
	})
	switch {
	case failed == nil:
		return res, nil
	case len(groups) == 1:
		return nil, failed
	}
	sort.Slice(outcome, func(i, j int) bool { return outcome[i].Partition < outcome[j].Partition })
	return nil, &ProduceError{Partitions: outcome}
}

// PartitionProduce is one partition's part of a produce that spans
// several: the request's records that went there and what became of them.
type PartitionProduce struct {
	Partition int
	// Records are the indexes, in the request, of the records this
	// partition was given, in request (and offset) order.
	Records []int
	// BaseOffset is the first record's offset when the batch committed
	// (Err is nil): Records[j] is at BaseOffset+j.
	BaseOffset int64
	// Err is why the batch was not committed, nil when it was.
	Err error
}

// ProduceError is a produce over several partitions of which at least
// one failed: Partitions has every partition of the request, committed
// (Err nil, with offsets) and failed, by partition number. Nothing of a
// failed partition was committed by this request (it may have been by an
// earlier one, see idempotent producers); a retry should resend only the
// failed partitions' records. It unwraps to the failed partitions'
// errors, so errors.Is finds each of them (as errors.Join would).
type ProduceError struct {
	Partitions []PartitionProduce
}

func (e *ProduceError) Error() string {
	var b strings.Builder
	committed := 0
	for _, p := range e.Partitions {
		if p.Err == nil {
			committed++
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "partition %d: %v", p.Partition, p.Err)
	}
	return fmt.Sprintf("produce failed on %d of %d partitions (%d committed): %s", len(e.Partitions)-committed, len(e.Partitions), committed, b.String())
}

// Unwrap returns the failed partitions' errors.
func (e *ProduceError) Unwrap() []error {
	var errs []error
	for _, p := range e.Partitions {
		if p.Err != nil {
			errs = append(errs, p.Err)
		}
	}
	return errs
}

// each runs f(0) … f(n-1) concurrently (inline when n is 1), waits for
// all, and joins their errors: writes to different partitions, each
// waiting for its own quorum fsync, overlap instead of adding up.
func each(n int, f func(i int) error) error {
	if n == 1 {
		return f(0)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ProduceNoAck starts a produce and returns at once (acks=none,
// at-most-once). It refuses with ErrRateLimited when too many are in flight.
// The append goes on after the call returns, for at most timeout, on a
// context derived from ctx: pass the caller's lifetime context (ended at
// its shutdown), not the request's. WaitNoAck waits for such appends.
func (b *Broker) ProduceNoAck(ctx context.Context, req *ProduceRequest, timeout time.Duration) error {
	t, err := b.store.Topic(req.Topic)
	if err != nil {
		return err
	}
	if err := CheckWritable(b.store, t); err != nil {
		return err
	}
	// Refuse bad records now: nobody hears of an error after this returns.
	for i := range req.Records {
		if err := b.checkRecord(&req.Records[i].Record); err != nil {
			return err
		}
	}
	if b.unacked.Add(1) > int64(b.cfg.MaxUnackedProduces) {
		b.unacked.Add(-1)
		return fmt.Errorf("%w: too many unacknowledged produces in flight", ErrRateLimited)
	}
	go func() {
		defer b.unacked.Add(-1)
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if _, err := b.produceTraced(ctx, req, true); err != nil {
			b.cfg.Logger.Debug("acks=none produce failed", "topic", req.Topic, "err", err)
		}
	}()
	return nil
}

// WaitNoAck blocks until no produce started by ProduceNoAck is in flight,
// or ctx ends (then it returns ctx's error). Shutdown calls it after new
// produces stopped, before cancelling their context.
func (b *Broker) WaitNoAck(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for b.unacked.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("acks=none produces still in flight: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

func (b *Broker) nextRR(topic string) uint64 {
	b.rrMu.Lock()
	c := b.rr[topic]
	if c == nil {
		c = new(atomic.Uint64)
		b.rr[topic] = c
	}
	b.rrMu.Unlock()
	return c.Add(1) - 1
}

func (b *Broker) checkRecord(r *Record) error {
	if len(r.Headers) > b.cfg.MaxHeaders {
		return fmt.Errorf("%w: %d headers on a record, the limit is %d", ErrTooLarge, len(r.Headers), b.cfg.MaxHeaders)
	}
	hb := 0
	for _, h := range r.Headers {
		if h.Key == "" {
			return Invalidf("header names must not be empty")
		}
		if h.Key == HeaderPriority && !validPriority(h.Value) {
			return &RecordError{Msg: fmt.Sprintf("header %s must be one of \"0\" … \"%d\", not %q", HeaderPriority, MaxPriority, h.Value)}
		}
		hb += len(h.Key) + len(h.Value)
	}
	if hb > b.cfg.MaxHeaderBytes {
		return fmt.Errorf("%w: %d bytes of headers on a record, the limit is %d", ErrTooLarge, hb, b.cfg.MaxHeaderBytes)
	}
	if n := len(r.Key) + len(r.Value) + hb; n > b.cfg.MaxRecordBytes {
		return fmt.Errorf("%w: a record of %d bytes, the limit is %d", ErrTooLarge, n, b.cfg.MaxRecordBytes)
	}
	if r.Timestamp < 0 {
		return Invalidf("timestamp must be ≥ 0")
	}
	return nil
}

// Position says where a fetch starts.
type Position int

const (
	AtOffset   Position = iota // FetchRequest.Offset
	AtEarliest                 // the log start
	AtLatest                   // the high watermark (new records only)
	AtTime                     // the first record with timestamp ≥ FetchRequest.Timestamp
)

// FetchRequest reads one partition.
type FetchRequest struct {
	Topic      string
	Partition  int
	From       Position
	Offset     int64
	Timestamp  int64
	MaxRecords int
	MaxBytes   int
	Wait       time.Duration // long-poll while no record is there
}

// FetchResult is a page of records.
type FetchResult struct {
	Records       []Record
	NextOffset    int64
	HighWatermark int64
	LogStart      int64
}

// Fetch reads from the local replica of a partition, long-polling up to
// req.Wait while the partition has nothing at the requested offset.
//
// It records a weir.fetch span (a child of the span in ctx, else of the
// first returned record's trace, linked to the others).
func (b *Broker) Fetch(ctx context.Context, req *FetchRequest) (*FetchResult, error) {
	tel := b.cfg.Telemetry
	start := time.Now()
	res, err := b.fetch(ctx, req)
	if res != nil {
		tel.fetched(ctx, req.Topic, res.Records, time.Since(start))
	}
	tel.traceFetch(ctx, req, res, err, start)
	return res, err
}

func (b *Broker) fetch(ctx context.Context, req *FetchRequest) (*FetchResult, error) {
	log, err := b.store.Partition(req.Topic, req.Partition)
	if err != nil {
		return nil, err
	}
	maxRecs := req.MaxRecords
	if maxRecs <= 0 {
		maxRecs = 500
	}
	maxRecs = min(maxRecs, b.cfg.MaxFetchRecords)
	maxBytes := req.MaxBytes
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	maxBytes = min(maxBytes, b.cfg.MaxFetchBytes)
	wait := min(req.Wait, b.cfg.MaxWait)

	off := req.Offset
	switch req.From {
	case AtEarliest:
		off = log.LogStart()
	case AtLatest:
		off = log.HighWatermark()
	case AtTime:
		off, err = log.OffsetForTime(ctx, req.Timestamp)
		if err != nil {
			return nil, err
		}
	}
	var timer *time.Timer
	for {
		changed := log.Changed()
		recs, err := log.Read(ctx, off, maxRecs, maxBytes)
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 || wait <= 0 {
			next := off
			if len(recs) > 0 {
				next = recs[len(recs)-1].Offset + 1
			}
			return &FetchResult{Records: recs, NextOffset: next, HighWatermark: log.HighWatermark(), LogStart: log.LogStart()}, nil
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-changed:
		case <-timer.C:
			wait = 0
		case <-b.endWaits:
			wait = 0
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// GroupLag is a committed group position with the partition's lag.
type GroupLag struct {
	GroupOffset
	Lag int64 // high watermark − committed offset (≥ 0)
}

// CommitOffsets validates and stores a group's positions.
func (b *Broker) CommitOffsets(ctx context.Context, group string, offs []GroupOffset) error {
	if group == "" || len(group) > 249 {
		return Invalidf("group names must be 1–249 characters")
	}
	if len(offs) == 0 {
		return Invalidf("offsets must not be empty")
	}
	for _, o := range offs {
		t, err := b.store.Topic(o.Topic)
		if err != nil {
			return err
		}
		if o.Partition < 0 || o.Partition >= t.Partitions {
			return fmt.Errorf("%w: topic %q has no partition %d", ErrPartitionNotFound, o.Topic, o.Partition)
		}
		if o.Offset < 0 {
			return Invalidf("offset must be ≥ 0")
		}
	}
	return b.store.CommitOffsets(ctx, group, offs)
}

// GroupOffsets returns a group's committed positions (of one topic when
// topic is not empty) with lag.
func (b *Broker) GroupOffsets(group, topic string) []GroupLag {
	var out []GroupLag
	for _, o := range b.store.GroupOffsets(group) {
		if topic != "" && o.Topic != topic {
			continue
		}
		gl := GroupLag{GroupOffset: o}
		if pi, err := b.store.PartitionInfo(o.Topic, o.Partition); err == nil {
			gl.Lag = max(0, pi.HighWatermark-o.Offset)
		}
		out = append(out, gl)
	}
	return out
}

// RunRetention applies every topic's retention on the partitions this node
// leads, every RetentionInterval, until ctx ends. The decision is taken here
// (on the leader) and replicated with TrimTo, so all replicas agree.
func (b *Broker) RunRetention(ctx context.Context) {
	t := time.NewTicker(b.cfg.RetentionInterval)
	defer t.Stop()
	for {
		b.EnforceRetention(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// EnforceRetention runs one retention pass as of now.
func (b *Broker) EnforceRetention(ctx context.Context, now time.Time) {
	for _, t := range b.store.Topics() {
		for p := 0; p < t.Partitions; p++ {
			log, err := b.store.Partition(t.Name, p)
			if err != nil || !log.IsLeader() {
				continue
			}
			if off, ok := RetentionPoint(log.Segments(), t.TopicConfig, now.UnixMilli()); ok && off > log.LogStart() {
				if err := log.TrimTo(ctx, off); err != nil {
					b.cfg.Logger.Warn("retention trim", "topic", t.Name, "partition", p, "err", err)
				}
			}
		}
	}
}

// RetentionPoint decides how far a partition may be trimmed: whole
// non-active segments whose newest record is older than RetentionMs, and
// the oldest segments while the partition exceeds RetentionBytes. It returns
// the new log start and whether anything is to be deleted.
func RetentionPoint(segs []SegmentInfo, cfg TopicConfig, nowMs int64) (int64, bool) {
	var total int64
	for _, s := range segs {
		total += s.Bytes
	}
	cut := -1
	for i, s := range segs {
		if s.Active {
			break
		}
		expired := cfg.RetentionMs > 0 && s.MaxTimestamp < nowMs-cfg.RetentionMs
		oversize := cfg.RetentionBytes > 0 && total > cfg.RetentionBytes
		if !expired && !oversize {
			break
		}
		total -= s.Bytes
		cut = i
	}
	if cut < 0 {
		return 0, false
	}
	return segs[cut].NextOffset, true
}
