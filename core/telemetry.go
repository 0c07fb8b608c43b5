package core

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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

// InstrumentationScope names the tracer of core's spans (and the meter of
// the metrics internal/telemetry records for core).
const InstrumentationScope = "github.com/weir-broker/weir/core"

// maxLinks bounds the links a batch span gets to its records' traces (the
// SDK keeps 128 by default).
const maxLinks = 128

// Metrics is the hook through which the domain reports what it counts and
// times; internal/telemetry implements it with OpenTelemetry instruments
// (docs/observability.md lists them) and keeps the totals GET /v1/stats
// shows. Methods are called concurrently on hot paths and must not block.
// NoMetrics is the default.
type Metrics interface {
	// Produced: a produce request to topic ended after d, having appended
	// records records of bytes bytes (0, 0 when it failed).
	Produced(ctx context.Context, topic string, records int, bytes int64, d time.Duration)
	// Fetched: a fetch by offset from topic returned records records of
	// bytes bytes after d (long-poll wait included).
	Fetched(ctx context.Context, topic string, records int, bytes int64, d time.Duration)
	// RecordsIn counts records appended to topic other than by a produce
	// request (a pipeline's outputs).
	RecordsIn(topic string, records int, bytes int64)
	// RecordsOut counts records read from topic other than by a fetch
	// (WebSocket delivery, Kafka fetches).
	RecordsOut(topic string, records int, bytes int64)
	// Committed: one batch of topic's was proposed to its partition's Raft
	// group and applied on this node after d.
	Committed(ctx context.Context, topic string, d time.Duration)
	// WasmCalled: one call into pipeline's module took d.
	WasmCalled(ctx context.Context, pipeline string, d time.Duration)
	// PipelineRecords counts pipeline's input records by outcome.
	PipelineRecords(pipeline string, processed, failed, deadLettered int)
	// QuotaThrottled: principal's quota of kind (requests, produce, fetch)
	// delayed a request by delay (0: refused it at once).
	QuotaThrottled(ctx context.Context, principal, kind string, delay time.Duration)
}

// NoMetrics is the Metrics that counts nothing.
type NoMetrics struct{}

var _ Metrics = NoMetrics{}

func (NoMetrics) Produced(context.Context, string, int, int64, time.Duration)   {}
func (NoMetrics) Fetched(context.Context, string, int, int64, time.Duration)    {}
func (NoMetrics) RecordsIn(string, int, int64)                                  {}
func (NoMetrics) RecordsOut(string, int, int64)                                 {}
func (NoMetrics) Committed(context.Context, string, time.Duration)              {}
func (NoMetrics) WasmCalled(context.Context, string, time.Duration)             {}
func (NoMetrics) PipelineRecords(string, int, int, int)                         {}
func (NoMetrics) QuotaThrottled(context.Context, string, string, time.Duration) {}

// TopicCounters are a topic's totals on this node since it started (what
// a Metrics implementation reports for GET /v1/stats).
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

// TelemetryConfig configures a Telemetry. Nil fields turn their signal
// off at no cost on the hot path.
type TelemetryConfig struct {
	// TracerProvider creates the domain's spans; nil: tracing off.
	TracerProvider trace.TracerProvider
	// Metrics receives counts and durations; nil: NoMetrics.
	Metrics Metrics
}

// Telemetry is how the domain, the gateway and the pipeline runner report
// traces and metrics: one per node, passed in BrokerConfig.Telemetry and
// returned by Broker.Telemetry. It starts spans through the OpenTelemetry
// API and hands counts and durations to its Metrics; internal/telemetry
// sets up the SDK, the exporters and the instruments.
//
// All methods are safe for concurrent use and on a nil *Telemetry (which
// does nothing). With tracing off, span helpers return ctx unchanged and a
// non-recording span without allocating.
type Telemetry struct {
	tracer trace.Tracer // nil: tracing off
	m      Metrics      // never nil
}

var noSpan = trace.SpanFromContext(context.Background()) // non-recording, immutable

// NewTelemetry returns the telemetry of cfg.
func NewTelemetry(cfg TelemetryConfig) *Telemetry {
	t := &Telemetry{m: cfg.Metrics}
	if t.m == nil {
		t.m = NoMetrics{}
	}
	if cfg.TracerProvider != nil {
		t.tracer = cfg.TracerProvider.Tracer(InstrumentationScope)
	}
	return t
}

// Tracing reports whether spans are created. Callers check it before
// building attributes for a span.
func (t *Telemetry) Tracing() bool { return t != nil && t.tracer != nil }

// ---- counts and durations, handed to Metrics ----

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
	var n, bytes int64
	if err == nil {
		n = int64(len(req.Records))
		for i := range req.Records {
			bytes += int64(req.Records[i].Size())
		}
	}
	t.m.Produced(ctx, req.Topic, int(n), bytes, d)
}

func (t *Telemetry) fetched(ctx context.Context, topic string, recs []Record, d time.Duration) {
	if t == nil {
		return
	}
	t.m.Fetched(ctx, topic, len(recs), recordsBytes(recs), d)
}

// RecordsOut counts records read from topic by a path that does not go
// through Broker.Fetch (Broker.Fetch counts its own).
func (t *Telemetry) RecordsOut(topic string, recs []Record) {
	if t == nil || len(recs) == 0 {
		return
	}
	t.m.RecordsOut(topic, len(recs), recordsBytes(recs))
}

// CountOut counts n records of about bytes bytes read from topic (for
// paths that have no core.Record at hand, such as WebSocket frames).
func (t *Telemetry) CountOut(topic string, n, bytes int) {
	if t == nil || n == 0 {
		return
	}
	t.m.RecordsOut(topic, n, int64(bytes))
}

// QuotaThrottled counts a request that a principal's quota of kind
// (requests, produce, fetch) delayed by delay (0: refused at once).
func (t *Telemetry) QuotaThrottled(ctx context.Context, principal, kind string, delay time.Duration) {
	if t == nil {
		return
	}
	t.m.QuotaThrottled(ctx, principal, kind, delay)
}

// PipelineRecords counts a pipeline's input records by outcome.
func (t *Telemetry) PipelineRecords(pipeline string, processed, failed, deadLettered int) {
	if t == nil {
		return
	}
	t.m.PipelineRecords(pipeline, processed, failed, deadLettered)
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
	ctx, span, start := t.startCommit(ctx, topic, partition, b)
	res, err := log.Append(ctx, b)
	t.endCommit(ctx, topic, span, start, res, err)
	return res, err
}

// ProposeAppend is Append for a queued append (AppendProposer): the
// weir.commit span and the commit latency run from the queueing to the
// end of wait.
func (t *Telemetry) ProposeAppend(ctx context.Context, log AppendProposer, topic string, partition int, b *AppendBatch) (func(context.Context) (AppendResult, error), error) {
	if t == nil {
		return log.ProposeAppend(b)
	}
	sctx, span, start := t.startCommit(ctx, topic, partition, b)
	w, err := log.ProposeAppend(b)
	if err != nil {
		t.endCommit(sctx, topic, span, start, AppendResult{}, err)
		return nil, err
	}
	return func(ctx context.Context) (AppendResult, error) {
		res, err := w(ctx)
		t.endCommit(sctx, topic, span, start, res, err)
		return res, err
	}, nil
}

func (t *Telemetry) startCommit(ctx context.Context, topic string, partition int, b *AppendBatch) (context.Context, trace.Span, time.Time) {
	span := noSpan
	if t.Tracing() {
		ctx, span = t.tracer.Start(ctx, SpanCommit, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
			attribute.String("messaging.system", "weir"),
			attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.destination.partition.id", strconv.Itoa(partition)),
			attribute.Int("messaging.batch.message_count", len(b.Records)),
		))
	}
	return ctx, span, time.Now()
}

func (t *Telemetry) endCommit(ctx context.Context, topic string, span trace.Span, start time.Time, res AppendResult, err error) {
	t.m.Committed(ctx, topic, time.Since(start))
	if span.IsRecording() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.Int64("weir.offset", res.BaseOffset), attribute.Bool("weir.duplicate", res.Duplicate))
		}
		span.End()
	}
}

// WasmCall runs fn (one call into a pipeline's module with n input
// records) inside a weir.wasm.call span, recording its duration and the
// call count. fn's error marks the span failed and is returned.
func (t *Telemetry) WasmCall(ctx context.Context, pipeline, module string, n int, fn func(context.Context) error) error {
	if t == nil {
		return fn(ctx)
	}
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
	t.m.WasmCalled(ctx, pipeline, time.Since(start))
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
		t.m.RecordsIn(topic, len(b.Records), recordsBytes(b.Records)) // outputs count as records in to their topic
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
