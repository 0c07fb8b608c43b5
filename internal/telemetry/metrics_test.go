package telemetry

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weir-broker/weir/core"
)

// TestCoreMetrics: what core hands its Metrics hook lands in the totals of
// GET /v1/stats and in /metrics under the names docs/observability.md
// gives, and the gateway's WebSocket counters are exported once observed.
func TestCoreMetrics(t *testing.T) {
	tel, err := New(context.Background(), Config{Env: MapEnv(nil), NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if err := tel.Observe(Sources{WebSocket: func() (int64, int64) { return 3, 1 }}); err != nil {
		t.Fatal(err)
	}
	c := tel.Core()
	ctx := context.Background()
	recs := []core.Record{{Value: []byte("abc")}, {Key: []byte("k"), Value: []byte("defg")}}
	c.RecordsOut("t", recs)
	c.CountOut("t", 1, 10)
	c.PipelineRecords("p", 3, 1, 2)
	if err := c.WasmCall(ctx, "p", "m", 1, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got, want := tel.TopicCounters()["t"], (core.TopicCounters{RecordsOut: 3, BytesOut: int64(recs[0].Size()+recs[1].Size()) + 10}); got != want {
		t.Errorf("topic counters %+v, want %+v", got, want)
	}
	if got, want := tel.PipelineCounters()["p"], (core.PipelineCounters{Processed: 3, Failed: 1, DeadLettered: 2, WasmCalls: 1}); got != want {
		t.Errorf("pipeline counters %+v, want %+v", got, want)
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, line := range []string{
		`weir_topic_records_out_total{topic="t"} 3`,
		`weir_pipeline_records_processed_total{pipeline="p"} 3`,
		`weir_pipeline_records_failed_total{pipeline="p"} 1`,
		`weir_pipeline_records_dead_lettered_total{pipeline="p"} 2`,
		`weir_wasm_call_duration_seconds_count{pipeline="p"} 1`,
		`weir_ws_connections 3`,
		`weir_ws_dropped_total 1`,
	} {
		if !hasMetricLine(body, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// hasMetricLine reports whether body has want's series with want's value,
// ignoring labels the exporter adds (otel_scope_*, job, instance).
func hasMetricLine(body, want string) bool {
	name, value, _ := strings.Cut(want, " ")
	labels := ""
	if i := strings.IndexByte(name, '{'); i >= 0 {
		name, labels = name[:i], strings.Trim(name[i:], "{}")
	}
	for _, l := range strings.Split(body, "\n") {
		series, v, ok := strings.Cut(l, " ")
		if !ok || v != value || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		if labels == "" || strings.Contains(series, labels) {
			return true
		}
	}
	return false
}
