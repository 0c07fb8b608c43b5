package telemetry

import (
	"context"
	"testing"

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

// BenchmarkProduceTelemetry measures the telemetry work of one produce
// request of 100 records, as Broker.Produce does it (the produce span, the
// stamping of records, the commit span with the proposal histogram, the
// per-topic counters), with tracing off and with 1% and 100% samplers.
// docs/benchmarks.md "## Tracing" relates it to the whole request.
func BenchmarkProduceTelemetry(b *testing.B) {
	for _, c := range []struct {
		name    string
		sampler sdktrace.Sampler
	}{
		{"off", nil},
		{"sampled-1pct", sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))},
		{"sampled-100pct", sdktrace.AlwaysSample()},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := Config{}
			if c.sampler != nil {
				cfg.SpanExporter, cfg.Sampler = tracetest.NewNoopExporter(), c.sampler
			}
			tel, err := New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			t := tel.Core()
			value := make([]byte, 1024)
			recs := make([]core.Record, 100)
			batch := &core.AppendBatch{}
			b.ReportAllocs()
			for b.Loop() {
				for i := range recs {
					recs[i] = core.Record{Value: value}
				}
				ctx, span := t.StartBatch(context.Background(), core.SpanProduce, trace.SpanKindServer, recs)
				t.Stamp(ctx, recs)
				batch.Records = recs
				_, err := t.Append(ctx, nopLog{}, "bench", 0, batch)
				t.CountOut("bench", len(recs), 100*1024)
				core.EndSpan(span, err)
			}
		})
	}
}
