package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

func TestTraceparentRoundTrip(t *testing.T) {
	const v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc, ok := ParseTraceparent(v)
	if !ok || !sc.IsRemote() || !sc.IsSampled() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("parse %q: %v %v", v, sc, ok)
	}
	if got := FormatTraceparent(sc); got != v {
		t.Fatalf("format: %q, want %q", got, v)
	}
	unsampled, _ := ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	if unsampled.IsSampled() || FormatTraceparent(unsampled)[53:] != "00" {
		t.Fatalf("unsampled: %v", unsampled)
	}
	// A later version may append fields; only the known ones are read.
	if _, ok := ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"); !ok {
		t.Fatal("future version with extra fields refused")
	}
}

func TestTraceparentRejectsMalformed(t *testing.T) {
	for _, v := range []string{
		"",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",     // no flags
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", // version 00 is exactly 55
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // forbidden version
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero span id
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // separator
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // not hex
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // extra data without a dash
	} {
		if sc, ok := ParseTraceparent(v); ok {
			t.Errorf("ParseTraceparent(%q) = %v, want rejected", v, sc)
		}
	}
}

func sampledCtx(tp string) context.Context {
	sc, _ := ParseTraceparent(tp)
	return trace.ContextWithSpanContext(context.Background(), sc.WithRemote(false))
}

// TestStamp covers which records get the span's traceparent. A no-op tracer
// provider turns tracing on without the SDK (core imports the API only).
func TestStamp(t *testing.T) {
	tel := NewTelemetry(TelemetryConfig{TracerProvider: tracenoop.NewTracerProvider()})
	const span = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"
	const sameTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-2222222222222222-01"
	const otherTrace = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-3333333333333333-01"
	shared := []Header{{Key: "a", Value: "1"}}
	recs := []Record{
		{Value: []byte("none"), Headers: shared},
		{Value: []byte("same"), Headers: []Header{{Key: TraceparentHeader, Value: sameTrace}}},
		{Value: []byte("other"), Headers: []Header{{Key: TraceparentHeader, Value: otherTrace}}},
		{Value: []byte("garbage"), Headers: []Header{{Key: TraceparentHeader, Value: "nonsense"}}},
	}
	tel.Stamp(sampledCtx(span), recs)
	want := []string{span, span, otherTrace, "nonsense"}
	for i, r := range recs {
		if got, _ := r.Header(TraceparentHeader); got != want[i] {
			t.Errorf("record %q: traceparent %q, want %q", r.Value, got, want[i])
		}
	}
	if len(shared) != 1 || len(recs[0].Headers) != 2 || recs[0].Headers[0] != shared[0] {
		t.Errorf("stamping changed the caller's header slice or lost headers: %v %v", shared, recs[0].Headers)
	}

	// Unsampled: nothing is written.
	unsampled := []Record{{Value: []byte("x")}}
	tel.Stamp(sampledCtx("00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-00"), unsampled)
	if len(unsampled[0].Headers) != 0 {
		t.Errorf("unsampled span stamped %v", unsampled[0].Headers)
	}
	// Tracing off: nothing is written.
	off := NewTelemetry(TelemetryConfig{})
	plain := []Record{{Value: []byte("x")}}
	off.Stamp(sampledCtx(span), plain)
	if len(plain[0].Headers) != 0 {
		t.Errorf("tracing off stamped %v", plain[0].Headers)
	}
}

// TestStartBatchParent checks the parent rule: the span in ctx, else the
// first record that carries a traceparent.
func TestStartBatchParent(t *testing.T) {
	tel := NewTelemetry(TelemetryConfig{TracerProvider: tracenoop.NewTracerProvider()})
	const first = "00-11111111111111111111111111111111-1111111111111111-01"
	const second = "00-22222222222222222222222222222222-2222222222222222-01"
	recs := []Record{{}, {Headers: []Header{{Key: TraceparentHeader, Value: first}}}, {Headers: []Header{{Key: TraceparentHeader, Value: second}}}}
	// The no-op tracer's span carries its parent's span context.
	_, span := tel.StartBatch(context.Background(), SpanDeliver, trace.SpanKindConsumer, recs)
	if got := span.SpanContext().TraceID().String(); got != "11111111111111111111111111111111" {
		t.Errorf("no span in ctx: parent trace %s, want the first record's", got)
	}
	ctx := sampledCtx(second)
	_, span = tel.StartBatch(ctx, SpanDeliver, trace.SpanKindConsumer, recs)
	if got := span.SpanContext().TraceID().String(); got != "22222222222222222222222222222222" {
		t.Errorf("span in ctx: parent trace %s, want ctx's", got)
	}
	ctx = tel.ContextWithTraceparent(context.Background(), first)
	if sc := trace.SpanContextFromContext(ctx); !sc.IsRemote() || sc.TraceID().String() != "11111111111111111111111111111111" {
		t.Errorf("ContextWithTraceparent: %v", sc)
	}
}

// TestTracingOffAllocatesNothing holds the "no cost on the hot path"
// promise: with tracing off, the span helpers neither allocate nor touch
// the records.
func TestTracingOffAllocatesNothing(t *testing.T) {
	tel := NewTelemetry(TelemetryConfig{})
	var nilTel *Telemetry
	ctx := context.Background()
	recs := []Record{{Value: []byte("x"), Headers: []Header{{Key: TraceparentHeader, Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}}
	req := &ProduceRequest{Topic: "t", Records: []ProduceRecord{{Record: recs[0]}}}
	for _, tt := range []*Telemetry{tel, nilTel} {
		allocs := testing.AllocsPerRun(100, func() {
			c, span := tt.StartBatch(ctx, SpanDeliver, trace.SpanKindConsumer, recs)
			tt.Stamp(c, recs)
			c = tt.ContextWithTraceparent(c, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			c, span2 := tt.startProduce(c, req)
			tt.stampProduce(c, req)
			EndSpan(span2, nil)
			EndSpan(span, nil)
		})
		if allocs != 0 {
			t.Errorf("tracing off (%p): %v allocations per call, want 0", tt, allocs)
		}
	}
}

// recMetrics records what Telemetry hands its Metrics, one line a call.
type recMetrics struct {
	mu    sync.Mutex
	calls []string
}

func (m *recMetrics) add(format string, a ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, fmt.Sprintf(format, a...))
}

func (m *recMetrics) Produced(_ context.Context, topic string, n int, bytes int64, _ time.Duration) {
	m.add("produced %s %d %d", topic, n, bytes)
}
func (m *recMetrics) Fetched(_ context.Context, topic string, n int, bytes int64, _ time.Duration) {
	m.add("fetched %s %d %d", topic, n, bytes)
}
func (m *recMetrics) RecordsIn(topic string, n int, bytes int64) {
	m.add("in %s %d %d", topic, n, bytes)
}
func (m *recMetrics) RecordsOut(topic string, n int, bytes int64) {
	m.add("out %s %d %d", topic, n, bytes)
}
func (m *recMetrics) Committed(_ context.Context, topic string, _ time.Duration) {
	m.add("committed %s", topic)
}
func (m *recMetrics) WasmCalled(_ context.Context, pipeline string, _ time.Duration) {
	m.add("wasm %s", pipeline)
}
func (m *recMetrics) PipelineRecords(pipeline string, processed, failed, dead int) {
	m.add("pipeline %s %d %d %d", pipeline, processed, failed, dead)
}
func (m *recMetrics) QuotaThrottled(_ context.Context, principal, kind string, delay time.Duration) {
	m.add("quota %s %s %s", principal, kind, delay)
}

// appendLog is a PartitionLog whose Append answers res, err.
type appendLog struct {
	PartitionLog
	res AppendResult
	err error
}

func (l appendLog) Append(context.Context, *AppendBatch) (AppendResult, error) { return l.res, l.err }

// TestMetricsHook: every count and duration reaches the Metrics hook, once,
// with the records' number and size; a failed or duplicate append counts
// no records in. A nil Telemetry and the default NoMetrics count nothing
// and do not fail.
func TestMetricsHook(t *testing.T) {
	m := &recMetrics{}
	tel := NewTelemetry(TelemetryConfig{Metrics: m})
	ctx := context.Background()
	recs := []Record{{Value: []byte("abc")}, {Key: []byte("k"), Value: []byte("defg")}}
	size := recs[0].Size() + recs[1].Size()
	req := &ProduceRequest{Topic: "t", Records: []ProduceRecord{{Record: recs[0]}, {Record: recs[1]}}}
	var nilTel *Telemetry // every method is safe on nil
	for _, tt := range []*Telemetry{tel, nilTel, NewTelemetry(TelemetryConfig{})} {
		tt.produced(ctx, req, nil, time.Millisecond)
		tt.produced(ctx, req, errors.New("refused"), time.Millisecond)
		tt.fetched(ctx, "t", recs, time.Millisecond)
		tt.RecordsOut("t", recs)
		tt.RecordsOut("t", nil) // nothing to count
		tt.CountOut("t", 3, 30)
		tt.PipelineRecords("p", 3, 1, 2)
		tt.QuotaThrottled(ctx, "alice", "produce", time.Second)
		called := false
		if err := tt.WasmCall(ctx, "p", "m", 1, func(context.Context) error { called = true; return nil }); err != nil || !called {
			t.Fatal("WasmCall did not call fn")
		}
		for _, l := range []appendLog{{res: AppendResult{BaseOffset: 7}}, {res: AppendResult{Duplicate: true}}, {err: ErrUnavailable}} {
			tt.AppendOutput(ctx, l, "p", "out", 0, &AppendBatch{Records: recs})
		}
		if tt != tel && tt.Tracing() {
			t.Error("telemetry without a tracer provider traces")
		}
	}
	want := []string{
		fmt.Sprintf("produced t 2 %d", size),
		"produced t 0 0",
		fmt.Sprintf("fetched t 2 %d", size),
		fmt.Sprintf("out t 2 %d", size),
		"out t 3 30",
		"pipeline p 3 1 2",
		"quota alice produce 1s",
		"wasm p",
		"committed out", fmt.Sprintf("in out 2 %d", size),
		"committed out",
		"committed out",
	}
	if !slices.Equal(m.calls, want) {
		t.Errorf("metrics calls:\n%s\nwant:\n%s", strings.Join(m.calls, "\n"), strings.Join(want, "\n"))
	}
}

func BenchmarkStartBatchTracingOff(b *testing.B) {
	tel := NewTelemetry(TelemetryConfig{})
	ctx := context.Background()
	recs := make([]Record, 100)
	b.ReportAllocs()
	for b.Loop() {
		c, span := tel.StartBatch(ctx, SpanDeliver, trace.SpanKindConsumer, recs)
		tel.Stamp(c, recs)
		EndSpan(span, nil)
	}
}
