package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-broker/weir/core"
)

func TestEnv(t *testing.T) {
	for _, c := range []struct {
		name     string
		env      map[string]string
		traces   bool
		endpoint string
		protocol string
		metrics  bool
		sampler  string // prefix of the sampler's description
		err      string
	}{
		{name: "nothing set", env: nil, traces: false, protocol: "http/protobuf", sampler: "ParentBased{root:AlwaysOnSampler"},
		{name: "only the service name", env: map[string]string{"OTEL_SERVICE_NAME": "x"}, traces: false, protocol: "http/protobuf"},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"},
			traces: true, endpoint: "http://c:4318/v1/traces", protocol: "http/protobuf", metrics: true},
		{name: "signal endpoint as is", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:9/custom"},
			traces: true, endpoint: "http://c:9/custom", protocol: "http/protobuf"},
		{name: "grpc keeps the base", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			traces: true, endpoint: "http://c:4317", protocol: "grpc", metrics: true},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"},
			traces: false, endpoint: "http://c:4318/v1/traces", protocol: "http/protobuf", metrics: true},
		{name: "metrics exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRICS_EXPORTER": "none"},
			traces: true, endpoint: "http://c:4318/v1/traces", protocol: "http/protobuf", metrics: false},
		{name: "sampler alone turns tracing on", env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
			traces: true, protocol: "http/protobuf", sampler: "TraceIDRatioBased{0.01}"},
		{name: "parent based ratio", env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
			traces: true, protocol: "http/protobuf", sampler: "ParentBased{root:TraceIDRatioBased{0.5}"},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, traces: true, protocol: "http/protobuf"},
		{name: "sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, traces: false},
		{name: "bad sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, err: "OTEL_TRACES_SAMPLER"},
		{name: "bad ratio", env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, err: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "bad protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, err: "protocol"},
		{name: "bad exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: "OTEL_TRACES_EXPORTER"},
		{name: "bad interval", env: map[string]string{"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, err: "OTEL_METRIC_EXPORT_INTERVAL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Env: MapEnv(c.env)}
			cfg.setDefaults()
			e, err := cfg.parseEnv()
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one naming %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.traces != c.traces || e.traceEndpoint != c.endpoint || e.traceProtocol != c.protocol || e.metricsOTLP != c.metrics {
				t.Fatalf("got traces %v endpoint %q protocol %q metrics %v", e.traces, e.traceEndpoint, e.traceProtocol, e.metricsOTLP)
			}
			if c.sampler != "" && !strings.HasPrefix(e.sampler.Description(), c.sampler) {
				t.Fatalf("sampler %s, want %s…", e.sampler.Description(), c.sampler)
			}
		})
	}
}

// TestNewWithEveryExporter builds the providers for each exporter kind; no
// collector needs to run (exporters connect lazily).
func TestNewWithEveryExporter(t *testing.T) {
	for _, env := range []map[string]string{
		nil,
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_METRIC_EXPORT_INTERVAL": "3600000"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_METRIC_EXPORT_INTERVAL": "3600000"},
		{"OTEL_TRACES_EXPORTER": "console", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,team=a%20b"},
	} {
		tel, err := New(context.Background(), Config{Env: MapEnv(env), NodeID: 3})
		if err != nil {
			t.Fatalf("%v: %v", env, err)
		}
		if tel.Tracing() != (env != nil) || tel.Core().Tracing() != tel.Tracing() {
			t.Errorf("%v: tracing %v", env, tel.Tracing())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		tel.Shutdown(ctx) // the unreachable collector may make this fail; it must return
		cancel()
	}
}

// TestBatchSpanLinks uses the SDK to check what core.StartBatch records: the
// parent from the first record and one link per other trace.
func TestBatchSpanLinks(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := New(context.Background(), Config{SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	tp := func(tid string) []core.Header {
		return []core.Header{{Key: core.TraceparentHeader, Value: "00-" + tid + "-1111111111111111-01"}}
	}
	a, b := strings.Repeat("a", 32), strings.Repeat("b", 32)
	recs := []core.Record{{}, {Headers: tp(a)}, {Headers: tp(b)}, {Headers: tp(b)}, {Headers: tp(a)}}
	_, span := tel.Core().StartBatch(context.Background(), core.SpanPipelineBatch, trace.SpanKindConsumer, recs)
	span.End()
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.SpanContext.TraceID().String() != a || s.Parent.SpanID().String() != "1111111111111111" {
		t.Fatalf("batch span in trace %s with parent %s, want the first record's", s.SpanContext.TraceID(), s.Parent.SpanID())
	}
	if len(s.Links) != 1 || s.Links[0].SpanContext.TraceID().String() != b {
		t.Fatalf("links %v, want one to trace b", s.Links)
	}
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(slog.NewTextHandler(&buf, nil))).With("node", 1)
	log.Info("no span")
	sc, _ := core.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	log.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "in a span")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log: %q", buf.String())
	}
	if strings.Contains(lines[0], "trace_id") {
		t.Errorf("record without a span got ids: %s", lines[0])
	}
	if !strings.Contains(lines[1], "trace_id=4bf92f3577b34da6a3ce929d0e0e4736") || !strings.Contains(lines[1], "span_id=00f067aa0ba902b7") || !strings.Contains(lines[1], "node=1") {
		t.Errorf("record in a span: %s", lines[1])
	}
}

// TestQuotaMetrics: the quota counters reach /metrics under the names
// docs/observability.md and docs/quotas.md give.
func TestQuotaMetrics(t *testing.T) {
	tel, err := New(context.Background(), Config{Env: MapEnv(nil), NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	tel.Core().QuotaThrottled(context.Background(), "alice", "produce", 250*time.Millisecond)
	tel.Core().QuotaThrottled(context.Background(), "alice", "produce", 0)
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var throttled, delay string
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if !strings.Contains(l, `principal="alice"`) || !strings.Contains(l, `kind="produce"`) {
			continue
		}
		if name, v, ok := strings.Cut(l, " "); ok && strings.HasPrefix(name, "weir_quota_throttled_total{") {
			throttled = v
		} else if ok && strings.HasPrefix(name, "weir_quota_delay_seconds_total{") {
			delay = v
		}
	}
	if throttled != "2" || delay != "0.25" {
		t.Fatalf("weir_quota_throttled_total %q (want 2), weir_quota_delay_seconds_total %q (want 0.25) in\n%s", throttled, delay, rec.Body)
	}
}
