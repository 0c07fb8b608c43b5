package core

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// TraceparentHeader is the record header that carries a W3C trace context
// (https://www.w3.org/TR/trace-context/#traceparent-header).
const TraceparentHeader = "traceparent"

// Span names. docs/observability.md lists them with their attributes.
const (
	SpanProduce        = "weir.produce"         // a produce request (HTTP or WebSocket)
	SpanCommit         = "weir.raft.commit"     // one batch proposed to a partition's Raft group until applied
	SpanFetch          = "weir.fetch"           // a fetch by offset
	SpanDeliver        = "weir.deliver"         // a batch of records pushed to a WebSocket subscriber
	SpanPipelineBatch  = "weir.pipeline.batch"  // one input batch of a pipeline
	SpanWasmCall       = "weir.wasm.call"       // one call into a pipeline's module
	SpanPipelineOutput = "weir.pipeline.output" // shipping a pipeline's outputs to an output partition
)

const instrumentationScope = "github.com/weir-broker/weir/core"

// maxLinks bounds the links a batch span gets to its records' traces (the
// SDK keeps 128 by default).
const maxLinks = 128

// TelemetryConfig configures a Telemetry. Nil providers turn their signal
// off at no cost on the hot path.
type TelemetryConfig struct {
	// TracerProvider creates the domain's spans; nil: tracing off.
	TracerProvider trace.TracerProvider
	// MeterProvider receives the domain's metrics; nil: none are exported
	// (the in-process counters behind GET /v1/stats are kept all the same).
	MeterProvider metric.MeterProvider
}

// Telemetry is how the domain, the gateway, the pipeline runner and the
// WebSocket server report traces and metrics: one per node, passed in
// BrokerConfig.Telemetry and returned by Broker.Telemetry. It only uses the
// OpenTelemetry API; internal/telemetry sets up the SDK and the exporters.
//
// All methods are safe for concurrent use and on a nil *Telemetry (which
// does nothing). With tracing off, span helpers return ctx unchanged and a
// non-recording span without allocating.
type Telemetry struct {
	tracer trace.Tracer // nil: tracing off

	produceDur  metric.Float64Histogram
	fetchDur    metric.Float64Histogram
	proposalDur metric.Float64Histogram
	wasmDur     metric.Float64Histogram

	quotaThrottled metric.Int64Counter   // requests delayed or refused by a quota (core/quota)
	quotaDelay     metric.Float64Counter // seconds requests waited for a quota

	topics    sync.Map // topic → *topicStats
	pipelines sync.Map // pipeline → *pipelineStats

	wsConns   atomic.Int64
	wsDropped atomic.Int64
}

type topicStats struct {
	recordsIn, bytesIn, recordsOut, bytesOut atomic.Int64
	observe                                  []metric.ObserveOption
	record                                   []metric.RecordOption
}

type pipelineStats struct {
	processed, failed, deadLettered, wasmCalls atomic.Int64
	observe                                    []metric.ObserveOption
	record                                     []metric.RecordOption
}

// TopicCounters are a topic's totals on this node since it started.
type TopicCounters struct {
	RecordsIn, BytesIn   int64 // produced through this node
	RecordsOut, BytesOut int64 // fetched from or delivered by this node
}

// PipelineCounters are a pipeline's totals on this node since it started.
type PipelineCounters struct {
	Processed    int64 // input records processed successfully
	Failed       int64 // input records of failed batches (each attempt counts)
	DeadLettered int64 // input records sent to the dead-letter topic
	WasmCalls    int64
}

var noSpan = trace.SpanFromContext(context.Background()) // non-recording, immutable

// latencyBuckets are histogram bounds in seconds, 0.5 ms to 60 s.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// NewTelemetry creates the instruments. It fails only when the meter
// provider refuses an instrument.
func NewTelemetry(cfg TelemetryConfig) (*Telemetry, error) {
	t := &Telemetry{}
	if cfg.TracerProvider != nil {
		t.tracer = cfg.TracerProvider.Tracer(instrumentationScope)
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	m := mp.Meter(instrumentationScope)
	var err error
	hist := func(name, desc string) metric.Float64Histogram {
		if err != nil {
			return nil
		}
		var h metric.Float64Histogram
		h, err = m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(latencyBuckets...))
		return h
	}
	t.produceDur = hist("weir.produce.duration", "Produce requests from receipt to commit, per topic")
	t.fetchDur = hist("weir.fetch.duration", "Fetches by offset, long-poll wait included, per topic")
	t.proposalDur = hist("weir.raft.proposal.duration", "One batch proposed to a partition's Raft group until applied on this node")
	t.wasmDur = hist("weir.wasm.call.duration", "One call into a pipeline's Wasm module")
	if err != nil {
		return nil, err
	}
	if t.quotaThrottled, err = m.Int64Counter("weir.quota.throttled", metric.WithUnit("{request}"),
		metric.WithDescription("Requests a principal's quota delayed or refused on this node, per principal and kind")); err != nil {
		return nil, err
	}
	if t.quotaDelay, err = m.Float64Counter("weir.quota.delay", metric.WithUnit("s"),
		metric.WithDescription("Time requests waited for a principal's quota on this node, per principal and kind")); err != nil {
		return nil, err
	}
	ctr := func(name, unit, desc string) metric.Int64ObservableCounter {
		if err != nil {
			return nil
		}
		var c metric.Int64ObservableCounter
		c, err = m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return c
	}
	recIn := ctr("weir.topic.records.in", "{record}", "Records produced to a topic through this node")
	bytesIn := ctr("weir.topic.bytes.in", "By", "Bytes of records produced to a topic through this node")
	recOut := ctr("weir.topic.records.out", "{record}", "Records read from a topic through this node (fetch and WebSocket)")
	bytesOut := ctr("weir.topic.bytes.out", "By", "Bytes of records read from a topic through this node")
	processed := ctr("weir.pipeline.records.processed", "{record}", "Input records a pipeline processed")
	failed := ctr("weir.pipeline.records.failed", "{record}", "Input records of failed pipeline batches (every attempt)")
	dead := ctr("weir.pipeline.records.dead_lettered", "{record}", "Input records a pipeline sent to its dead-letter topic")
	dropped := ctr("weir.ws.dropped", "{connection}", "WebSocket connections closed because the client read too slowly")
	if err != nil {
		return nil, err
	}
	conns, err := m.Int64ObservableUpDownCounter("weir.ws.connections", metric.WithUnit("{connection}"), metric.WithDescription("Open WebSocket connections"))
	if err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		t.topics.Range(func(_, v any) bool {
			s := v.(*topicStats)
			o.ObserveInt64(recIn, s.recordsIn.Load(), s.observe...)
			o.ObserveInt64(bytesIn, s.bytesIn.Load(), s.observe...)
			o.ObserveInt64(recOut, s.recordsOut.Load(), s.observe...)
			o.ObserveInt64(bytesOut, s.bytesOut.Load(), s.observe...)
			return true
		})
		t.pipelines.Range(func(_, v any) bool {
			s := v.(*pipelineStats)
			o.ObserveInt64(processed, s.processed.Load(), s.observe...)
			o.ObserveInt64(failed, s.failed.Load(), s.observe...)
			o.ObserveInt64(dead, s.deadLettered.Load(), s.observe...)
			return true
		})
		o.ObserveInt64(conns, t.wsConns.Load())
		o.ObserveInt64(dropped, t.wsDropped.Load())
		return nil
	}, recIn, bytesIn, recOut, bytesOut, processed, failed, dead, conns, dropped)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Tracing reports whether spans are created. Callers check it before
// building attributes for a span.
func (t *Telemetry) Tracing() bool { return t != nil && t.tracer != nil }

func (t *Telemetry) topic(name string) *topicStats {
	if v, ok := t.topics.Load(name); ok {
		return v.(*topicStats)
	}
	set := attribute.NewSet(attribute.String("topic", name))
	s := &topicStats{observe: []metric.ObserveOption{metric.WithAttributeSet(set)}, record: []metric.RecordOption{metric.WithAttributeSet(set)}}
	v, _ := t.topics.LoadOrStore(name, s)
	return v.(*topicStats)
}

func (t *Telemetry) pipeline(name string) *pipelineStats {
	if v, ok := t.pipelines.Load(name); ok {
		return v.(*pipelineStats)
	}
	set := attribute.NewSet(attribute.String("pipeline", name))
	s := &pipelineStats{observe: []metric.ObserveOption{metric.WithAttributeSet(set)}, record: []metric.RecordOption{metric.WithAttributeSet(set)}}
	v, _ := t.pipelines.LoadOrStore(name, s)
	return v.(*pipelineStats)
}

// ---- counters and histograms ----

func recordsBytes(recs []Record) int64 {
	var n int64
	for i := range recs {
		n += int64(recs[i].Size())
	}
	return n
}

func (t *Telemetry) produced(ctx context.Context, req *ProduceRequest, err error, d time.Duration) {
	if t == nil {
		return
	}
	s := t.topic(req.Topic)
	if err == nil {
		var n int64
		for i := range req.Records {
			n += int64(req.Records[i].Size())
		}
		s.recordsIn.Add(int64(len(req.Records)))
		s.bytesIn.Add(n)
	}
	t.produceDur.Record(ctx, d.Seconds(), s.record...)
}

func (t *Telemetry) fetched(ctx context.Context, topic string, recs []Record, d time.Duration) {
	if t == nil {
		return
	}
	s := t.topic(topic)
	t.RecordsOut(topic, recs)
	t.fetchDur.Record(ctx, d.Seconds(), s.record...)
}

// RecordsOut counts records read from topic by a path that does not go
// through Broker.Fetch (Broker.Fetch counts its own).
func (t *Telemetry) RecordsOut(topic string, recs []Record) {
	if t == nil || len(recs) == 0 {
		return
	}
	s := t.topic(topic)
	s.recordsOut.Add(int64(len(recs)))
	s.bytesOut.Add(recordsBytes(recs))
}

// CountOut counts n records of about bytes bytes read from topic (for
// paths that have no core.Record at hand, such as WebSocket frames).
func (t *Telemetry) CountOut(topic string, n, bytes int) {
	if t == nil || n == 0 {
		return
	}
	s := t.topic(topic)
	s.recordsOut.Add(int64(n))
	s.bytesOut.Add(int64(bytes))
}

// QuotaThrottled counts a request that a principal's quota of kind
// (requests, produce, fetch) delayed by delay (0: refused at once).
func (t *Telemetry) QuotaThrottled(ctx context.Context, principal, kind string, delay time.Duration) {
	if t == nil {
		return
	}
	set := metric.WithAttributes(attribute.String("principal", principal), attribute.String("kind", kind))
	t.quotaThrottled.Add(ctx, 1, set)
	if delay > 0 {
		t.quotaDelay.Add(ctx, delay.Seconds(), set)
	}
}

// PipelineRecords counts a pipeline's input records by outcome.
func (t *Telemetry) PipelineRecords(pipeline string, processed, failed, deadLettered int) {
	if t == nil {
		return
	}
	s := t.pipeline(pipeline)
	s.processed.Add(int64(processed))
	s.failed.Add(int64(failed))
	s.deadLettered.Add(int64(deadLettered))
}

// WSConnections adds delta (+1 on open, −1 on close) to the open WebSocket
// connections.
func (t *Telemetry) WSConnections(delta int) {
	if t != nil {
		t.wsConns.Add(int64(delta))
	}
}

// WSDropped counts a WebSocket client disconnected for reading too slowly.
func (t *Telemetry) WSDropped() {
	if t != nil {
		t.wsDropped.Add(1)
	}
}

// TopicCounters returns every topic's totals (topics deleted since keep
// theirs).
func (t *Telemetry) TopicCounters() map[string]TopicCounters {
	out := map[string]TopicCounters{}
	if t == nil {
		return out
	}
	t.topics.Range(func(k, v any) bool {
		s := v.(*topicStats)
		out[k.(string)] = TopicCounters{s.recordsIn.Load(), s.bytesIn.Load(), s.recordsOut.Load(), s.bytesOut.Load()}
		return true
	})
	return out
}

// PipelineCounters returns every pipeline's totals on this node.
func (t *Telemetry) PipelineCounters() map[string]PipelineCounters {
	out := map[string]PipelineCounters{}
	if t == nil {
		return out
	}
	t.pipelines.Range(func(k, v any) bool {
		s := v.(*pipelineStats)
		out[k.(string)] = PipelineCounters{s.processed.Load(), s.failed.Load(), s.deadLettered.Load(), s.wasmCalls.Load()}
		return true
	})
	return out
}

// WSCounters returns the open WebSocket connections and the slow clients
// dropped so far.
func (t *Telemetry) WSCounters() (connections, dropped int64) {
	if t == nil {
		return 0, 0
	}
	return t.wsConns.Load(), t.wsDropped.Load()
}

// ---- spans ----

// StartSpan starts a span named name as a child of the span in ctx. With
// tracing off it returns ctx and a non-recording span, and attrs are not
// looked at (guard costly attributes with Tracing).
func (t *Telemetry) StartSpan(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.Tracing() {
		return ctx, noSpan
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// StartBatch starts a span for work on a batch of records: its parent is the
// span in ctx when there is one, else the trace of the first record that
// carries a traceparent header; it links to every other trace its records
// carry (at most 128). The fetch, WebSocket delivery and pipeline batch
// spans use it.
func (t *Telemetry) StartBatch(ctx context.Context, name string, kind trace.SpanKind, recs []Record, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.Tracing() {
		return ctx, noSpan
	}
	return t.startBatch(ctx, name, kind, time.Time{}, len(recs), func(i int) (string, bool) { return recs[i].Header(TraceparentHeader) }, attrs)
}

// StartBatchOf is StartBatch for n records whose traceparent headers tp
// returns (for callers that hold encoded records).
func (t *Telemetry) StartBatchOf(ctx context.Context, name string, kind trace.SpanKind, n int, tp func(i int) (string, bool), attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.Tracing() {
		return ctx, noSpan
	}
	return t.startBatch(ctx, name, kind, time.Time{}, n, tp, attrs)
}

func (t *Telemetry) startBatch(ctx context.Context, name string, kind trace.SpanKind, start time.Time, n int, tp func(int) (string, bool), attrs []attribute.KeyValue) (context.Context, trace.Span) {
	parent := trace.SpanContextFromContext(ctx)
	var links []trace.Link
	for i := 0; i < n; i++ {
		v, ok := tp(i)
		if !ok {
			continue
		}
		sc, ok := ParseTraceparent(v)
		if !ok {
			continue
		}
		if !parent.IsValid() {
			parent = sc
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			continue
		}
		if sc.TraceID() == parent.TraceID() || len(links) >= maxLinks {
			continue
		}
		dup := false
		for _, l := range links {
			if l.SpanContext.TraceID() == sc.TraceID() {
				dup = true
				break
			}
		}
		if !dup {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(kind), trace.WithAttributes(attrs...)}
	if len(links) > 0 {
		opts = append(opts, trace.WithLinks(links...))
	}
	if !start.IsZero() {
		opts = append(opts, trace.WithTimestamp(start))
	}
	return t.tracer.Start(ctx, name, opts...)
}

// Stamp writes the trace context of the span in ctx into the traceparent
// header of every record that has none, or whose traceparent belongs to the
// same trace (the span continued it), so that consumers and pipelines
// continue the trace. Records carrying another trace keep theirs. Nothing
// happens unless the span is sampled: unsampled records carry no header.
func (t *Telemetry) Stamp(ctx context.Context, recs []Record) {
	if !t.Tracing() {
		return
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return
	}
	tp := FormatTraceparent(sc)
	for i := range recs {
		stampRecord(&recs[i], sc, tp)
	}
}

func stampRecord(r *Record, sc trace.SpanContext, tp string) {
	for j, h := range r.Headers {
		if h.Key != TraceparentHeader {
			continue
		}
		if old, ok := ParseTraceparent(h.Value); ok && old.TraceID() == sc.TraceID() {
			hs := make([]Header, len(r.Headers))
			copy(hs, r.Headers)
			hs[j].Value = tp
			r.Headers = hs
		}
		return
	}
	hs := make([]Header, len(r.Headers), len(r.Headers)+1)
	copy(hs, r.Headers)
	r.Headers = append(hs, Header{Key: TraceparentHeader, Value: tp})
}

// ContextWithTraceparent returns ctx carrying the remote span context of a
// W3C traceparent value (for example an HTTP request's traceparent header),
// or ctx itself when tracing is off or the value is not valid.
func (t *Telemetry) ContextWithTraceparent(ctx context.Context, traceparent string) context.Context {
	if !t.Tracing() || traceparent == "" {
		return ctx
	}
	sc, ok := ParseTraceparent(traceparent)
	if !ok {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// Append appends b to a partition log inside a weir.raft.commit span (a
// child of the span in ctx) and records the proposal latency. Broker.Produce
// uses it; so should every other writer of records (pipeline outputs, dead
// letters).
func (t *Telemetry) Append(ctx context.Context, log PartitionLog, topic string, partition int, b *AppendBatch) (AppendResult, error) {
	if t == nil {
		return log.Append(ctx, b)
	}
	s := t.topic(topic)
	span := noSpan
	if t.Tracing() {
		ctx, span = t.tracer.Start(ctx, SpanCommit, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
			attribute.String("messaging.system", "weir"),
			attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.destination.partition.id", strconv.Itoa(partition)),
			attribute.Int("messaging.batch.message_count", len(b.Records)),
		))
	}
	start := time.Now()
	res, err := log.Append(ctx, b)
	t.proposalDur.Record(ctx, time.Since(start).Seconds(), s.record...)
	if span.IsRecording() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.Int64("weir.offset", res.BaseOffset), attribute.Bool("weir.duplicate", res.Duplicate))
		}
		span.End()
	}
	return res, err
}

// WasmCall runs fn (one call into a pipeline's module with n input
// records) inside a weir.wasm.call span, recording its duration and the
// call count. fn's error marks the span failed and is returned.
func (t *Telemetry) WasmCall(ctx context.Context, pipeline, module string, n int, fn func(context.Context) error) error {
	if t == nil {
		return fn(ctx)
	}
	s := t.pipeline(pipeline)
	span := noSpan
	if t.Tracing() {
		ctx, span = t.tracer.Start(ctx, SpanWasmCall, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
			attribute.String("weir.pipeline", pipeline),
			attribute.String("weir.module", module),
			attribute.Int("messaging.batch.message_count", n),
		))
	}
	start := time.Now()
	err := fn(ctx)
	s.wasmCalls.Add(1)
	t.wasmDur.Record(ctx, time.Since(start).Seconds(), s.record...)
	EndSpan(span, err)
	return err
}

// StartPipelineBatch starts the weir.pipeline.batch span of one input batch
// (see StartBatch for its parent and links).
func (t *Telemetry) StartPipelineBatch(ctx context.Context, pipeline, topic string, partition int, recs []Record) (context.Context, trace.Span) {
	if !t.Tracing() {
		return ctx, noSpan
	}
	return t.StartBatch(ctx, SpanPipelineBatch, trace.SpanKindConsumer, recs,
		attribute.String("messaging.system", "weir"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("weir.pipeline", pipeline),
		attribute.String("messaging.destination.name", topic),
		attribute.String("messaging.destination.partition.id", strconv.Itoa(partition)),
		attribute.Int("messaging.batch.message_count", len(recs)))
}

// AppendOutput appends a pipeline's output batch inside a
// weir.pipeline.output span (parent: the span in ctx, else the first
// record's trace), with its weir.raft.commit child, and counts the records
// in to the output topic.
func (t *Telemetry) AppendOutput(ctx context.Context, log PartitionLog, pipeline, topic string, partition int, b *AppendBatch) (AppendResult, error) {
	span := noSpan
	if t.Tracing() {
		ctx, span = t.StartBatch(ctx, SpanPipelineOutput, trace.SpanKindProducer, b.Records,
			attribute.String("messaging.system", "weir"),
			attribute.String("weir.pipeline", pipeline),
			attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.destination.partition.id", strconv.Itoa(partition)),
			attribute.Int("messaging.batch.message_count", len(b.Records)))
	}
	res, err := t.Append(ctx, log, topic, partition, b)
	if t != nil && err == nil && !res.Duplicate {
		s := t.topic(topic) // outputs count as records in to their topic
		s.recordsIn.Add(int64(len(b.Records)))
		s.bytesIn.Add(recordsBytes(b.Records))
	}
	EndSpan(span, err)
	return res, err
}

// EndSpan ends span, marking it failed when err is not nil.
func EndSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// ---- the broker's own spans ----

func (t *Telemetry) startProduce(ctx context.Context, req *ProduceRequest) (context.Context, trace.Span) {
	if !t.Tracing() {
		return ctx, noSpan
	}
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "weir"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.destination.name", req.Topic),
		attribute.Int("messaging.batch.message_count", len(req.Records)),
	}
	if req.ProducerID != "" {
		attrs = append(attrs, attribute.String("weir.producer_id", req.ProducerID))
	}
	return t.startBatch(ctx, SpanProduce, trace.SpanKindServer, time.Time{}, len(req.Records),
		func(i int) (string, bool) { return req.Records[i].Header(TraceparentHeader) }, attrs)
}

func (t *Telemetry) stampProduce(ctx context.Context, req *ProduceRequest) {
	if !t.Tracing() {
		return
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return
	}
	tp := FormatTraceparent(sc)
	for i := range req.Records {
		stampRecord(&req.Records[i].Record, sc, tp)
	}
}

func (t *Telemetry) traceFetch(ctx context.Context, req *FetchRequest, res *FetchResult, err error, start time.Time) {
	if !t.Tracing() {
		return
	}
	var recs []Record
	if res != nil {
		recs = res.Records
	}
	_, span := t.startBatch(ctx, SpanFetch, trace.SpanKindServer, start, len(recs),
		func(i int) (string, bool) { return recs[i].Header(TraceparentHeader) }, []attribute.KeyValue{
			attribute.String("messaging.system", "weir"),
			attribute.String("messaging.operation.type", "receive"),
			attribute.String("messaging.destination.name", req.Topic),
			attribute.String("messaging.destination.partition.id", strconv.Itoa(req.Partition)),
			attribute.Int("messaging.batch.message_count", len(recs)),
		})
	if res != nil && len(recs) > 0 {
		span.SetAttributes(attribute.Int64("weir.offset", recs[0].Offset))
	}
	EndSpan(span, err)
}

// ---- W3C traceparent ----

// ParseTraceparent parses a W3C traceparent value ("00-<32 hex trace
// id>-<16 hex span id>-<2 hex flags>") into a remote span context.
func ParseTraceparent(v string) (trace.SpanContext, bool) {
	// Version 00 is exactly 55 characters; later versions may append fields.
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return trace.SpanContext{}, false
	}
	ver, ok := hexByte(v[0], v[1])
	if !ok || ver == 0xff || (ver == 0 && len(v) != 55) {
		return trace.SpanContext{}, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	for i := range tid {
		if tid[i], ok = hexByte(v[3+2*i], v[4+2*i]); !ok {
			return trace.SpanContext{}, false
		}
	}
	for i := range sid {
		if sid[i], ok = hexByte(v[36+2*i], v[37+2*i]); !ok {
			return trace.SpanContext{}, false
		}
	}
	flags, ok := hexByte(v[53], v[54])
	if !ok || !tid.IsValid() || !sid.IsValid() {
		return trace.SpanContext{}, false
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags) & trace.FlagsSampled, Remote: true,
	}), true
}

// FormatTraceparent returns the W3C traceparent value of sc.
func FormatTraceparent(sc trace.SpanContext) string {
	const hexd = "0123456789abcdef"
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	for i, c := range tid {
		b[3+2*i], b[4+2*i] = hexd[c>>4], hexd[c&0xf]
	}
	b[35] = '-'
	for i, c := range sid {
		b[36+2*i], b[37+2*i] = hexd[c>>4], hexd[c&0xf]
	}
	b[52] = '-'
	f := byte(sc.TraceFlags() & trace.FlagsSampled)
	b[53], b[54] = hexd[f>>4], hexd[f&0xf]
	return string(b[:])
}

func hexByte(a, b byte) (byte, bool) {
	x, ok1 := unhex(a)
	y, ok2 := unhex(b)
	return x<<4 | y, ok1 && ok2
}

// unhex accepts lower-case hex only, as the W3C format requires.
func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
