package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-broker/weir/core"
)

// nopLog is a partition log whose Append returns at once: the benchmark
// measures the telemetry around an append, not the append.
type nopLog struct{ core.PartitionLog }

func (nopLog) Append(context.Context, *core.AppendBatch) (core.AppendResult, error) {
	return core.AppendResult{BaseOffset: 1}, nil
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProduceTelemetry measures the telemetry work of one produce
// request of 1 or 100 records, as Broker.Produce does it (the produce span,
// the stamping of records, the commit span with the proposal histogram, the
// per-topic counters), with tracing off and with 1% and 100% samplers. It
// reports cpu-ns/op, the process's CPU time per request (export included),
// which other load on the machine disturbs much less than ns/op.
// docs/benchmarks.md "## Tracing" relates it to the whole request.
func BenchmarkProduceTelemetry(b *testing.B) {
	for _, n := range []int{1, 100} {
		for _, c := range []struct {
			name    string
			sampler sdktrace.Sampler
		}{
			{"off", nil},
			{"sampled-1pct", sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))},
			{"sampled-100pct", sdktrace.AlwaysSample()},
		} {
			b.Run(fmt.Sprintf("records=%d/%s", n, c.name), func(b *testing.B) { benchProduceTelemetry(b, n, c.sampler) })
		}
	}
}

func benchProduceTelemetry(b *testing.B, n int, sampler sdktrace.Sampler) {
	cfg := Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if sampler != nil {
		cfg.SpanExporter, cfg.Sampler = tracetest.NewNoopExporter(), sampler
	}
	tel, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	t := tel.Core()
	value := make([]byte, 1024)
	recs := make([]core.Record, n)
	batch := &core.AppendBatch{}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		for i := range recs {
			recs[i] = core.Record{Value: value}
		}
		ctx, span := t.StartBatch(context.Background(), core.SpanProduce, trace.SpanKindServer, recs)
		t.Stamp(ctx, recs)
		batch.Records = recs
		_, err := t.Append(ctx, nopLog{}, "bench", 0, batch)
		t.CountOut("bench", len(recs), n*1024)
		core.EndSpan(span, err)
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
