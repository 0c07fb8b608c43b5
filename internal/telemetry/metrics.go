package telemetry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/weir-broker/weir/core"
)

// metrics is the node's core.Metrics: OpenTelemetry instruments for what
// the domain counts and times, and the per-topic and per-pipeline totals
// GET /v1/stats shows. docs/observability.md lists every instrument.
type metrics struct {
	produceDur  metric.Float64Histogram
	fetchDur    metric.Float64Histogram
	proposalDur metric.Float64Histogram
	wasmDur     metric.Float64Histogram

	quotaThrottled metric.Int64Counter   // requests delayed or refused by a quota (core/quota)
	quotaDelay     metric.Float64Counter // seconds requests waited for a quota

	topics    sync.Map // topic → *topicStats
	pipelines sync.Map // pipeline → *pipelineStats
}

var _ core.Metrics = (*metrics)(nil)

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

// latencyBuckets are histogram bounds in seconds, 0.5 ms to 60 s.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// newMetrics creates the domain's instruments on m (the meter of
// core.InstrumentationScope). It fails only when the meter refuses one.
func newMetrics(m metric.Meter) (*metrics, error) {
	t := &metrics{}
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
	if err := t.registerTotals(m); err != nil {
		return nil, err
	}
	return t, nil
}

// registerTotals exports the per-topic and per-pipeline totals as
// observable counters.
func (t *metrics) registerTotals(m metric.Meter) error {
	var err error
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
	if err != nil {
		return err
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
		return nil
	}, recIn, bytesIn, recOut, bytesOut, processed, failed, dead)
	return err
}

func (t *metrics) topic(name string) *topicStats {
	if v, ok := t.topics.Load(name); ok {
		return v.(*topicStats)
	}
	set := attribute.NewSet(attribute.String("topic", name))
	s := &topicStats{observe: []metric.ObserveOption{metric.WithAttributeSet(set)}, record: []metric.RecordOption{metric.WithAttributeSet(set)}}
	v, _ := t.topics.LoadOrStore(name, s)
	return v.(*topicStats)
}

func (t *metrics) pipeline(name string) *pipelineStats {
	if v, ok := t.pipelines.Load(name); ok {
		return v.(*pipelineStats)
	}
	set := attribute.NewSet(attribute.String("pipeline", name))
	s := &pipelineStats{observe: []metric.ObserveOption{metric.WithAttributeSet(set)}, record: []metric.RecordOption{metric.WithAttributeSet(set)}}
	v, _ := t.pipelines.LoadOrStore(name, s)
	return v.(*pipelineStats)
}

func (t *metrics) Produced(ctx context.Context, topic string, records int, bytes int64, d time.Duration) {
	s := t.topic(topic)
	s.recordsIn.Add(int64(records))
	s.bytesIn.Add(bytes)
	t.produceDur.Record(ctx, d.Seconds(), s.record...)
}

func (t *metrics) Fetched(ctx context.Context, topic string, records int, bytes int64, d time.Duration) {
	s := t.topic(topic)
	s.recordsOut.Add(int64(records))
	s.bytesOut.Add(bytes)
	t.fetchDur.Record(ctx, d.Seconds(), s.record...)
}

func (t *metrics) RecordsIn(topic string, records int, bytes int64) {
	s := t.topic(topic)
	s.recordsIn.Add(int64(records))
	s.bytesIn.Add(bytes)
}

func (t *metrics) RecordsOut(topic string, records int, bytes int64) {
	s := t.topic(topic)
	s.recordsOut.Add(int64(records))
	s.bytesOut.Add(bytes)
}

func (t *metrics) Committed(ctx context.Context, topic string, d time.Duration) {
	t.proposalDur.Record(ctx, d.Seconds(), t.topic(topic).record...)
}

func (t *metrics) WasmCalled(ctx context.Context, pipeline string, d time.Duration) {
	s := t.pipeline(pipeline)
	s.wasmCalls.Add(1)
	t.wasmDur.Record(ctx, d.Seconds(), s.record...)
}

func (t *metrics) PipelineRecords(pipeline string, processed, failed, deadLettered int) {
	s := t.pipeline(pipeline)
	s.processed.Add(int64(processed))
	s.failed.Add(int64(failed))
	s.deadLettered.Add(int64(deadLettered))
}

func (t *metrics) QuotaThrottled(ctx context.Context, principal, kind string, delay time.Duration) {
	set := metric.WithAttributes(attribute.String("principal", principal), attribute.String("kind", kind))
	t.quotaThrottled.Add(ctx, 1, set)
	if delay > 0 {
		t.quotaDelay.Add(ctx, delay.Seconds(), set)
	}
}

// topicCounters returns every topic's totals (topics deleted since keep
// theirs).
func (t *metrics) topicCounters() map[string]core.TopicCounters {
	out := map[string]core.TopicCounters{}
	t.topics.Range(func(k, v any) bool {
		s := v.(*topicStats)
		out[k.(string)] = core.TopicCounters{RecordsIn: s.recordsIn.Load(), BytesIn: s.bytesIn.Load(), RecordsOut: s.recordsOut.Load(), BytesOut: s.bytesOut.Load()}
		return true
	})
	return out
}

// pipelineCounters returns every pipeline's totals on this node.
func (t *metrics) pipelineCounters() map[string]core.PipelineCounters {
	out := map[string]core.PipelineCounters{}
	t.pipelines.Range(func(k, v any) bool {
		s := v.(*pipelineStats)
		out[k.(string)] = core.PipelineCounters{Processed: s.processed.Load(), Failed: s.failed.Load(), DeadLettered: s.deadLettered.Load(), WasmCalls: s.wasmCalls.Load()}
		return true
	})
	return out
}
