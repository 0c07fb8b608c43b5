package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/internal/telemetry"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// withSpans makes the node export every span to exp, synchronously.
func withSpans(exp sdktrace.SpanExporter) func(*Config) {
	return func(c *Config) { c.Telemetry.SpanExporter = exp }
}

// spansByName indexes finished spans; each name must appear once unless
// the caller looks at the slice.
func spansByName(exp *tracetest.InMemoryExporter) map[string][]tracetest.SpanStub {
	out := map[string][]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		out[s.Name] = append(out[s.Name], s)
	}
	return out
}

func fetchAll(t *testing.T, url, topic string, p int, header ...string) fetchResp {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=earliest", url, topic, p), nil)
	if len(header) == 2 {
		req.Header.Set(header[0], header[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("fetch: %d %s", resp.StatusCode, b)
	}
	var f fetchResp
	(&tu.Response{Body: b}).JSON(t, &f)
	return f
}

func produceWithTraceparent(t *testing.T, url, topic, traceparent string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url+"/v1/topics/"+topic+"/records", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		rb, _ := io.ReadAll(resp.Body)
		t.Fatalf("produce: %d %s", resp.StatusCode, rb)
	}
}

// TestTraceFollowsRecordProduceFetch follows one record: the producer's
// traceparent (HTTP header) → weir.produce → weir.raft.commit, the record
// stamped with the produce span's context, and a fetch without any header
// continuing the same trace from the record.
func TestTraceFollowsRecordProduceFetch(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	s := startNode(t, t.TempDir(), withSpans(exp))
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "traced", 1)

	const producerTrace, producerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	otherTP := "00-11111111111111111111111111111111-2222222222222222-01"
	produceWithTraceparent(t, u, "traced", "00-"+producerTrace+"-"+producerSpan+"-01", map[string]any{"records": []map[string]any{
		{"key": "k", "value": "followed"},
		{"key": "k", "value": "has its own trace", "headers": map[string]string{"traceparent": otherTP}},
	}})
	f := fetchAll(t, u, "traced", 0)
	if len(f.Records) != 2 {
		t.Fatalf("fetched %d records", len(f.Records))
	}
	spans := spansByName(exp)
	if len(spans[core.SpanProduce]) != 1 || len(spans[core.SpanCommit]) != 1 || len(spans[core.SpanFetch]) != 1 {
		t.Fatalf("spans: %v", names(exp))
	}
	produce, commit, fetch := spans[core.SpanProduce][0], spans[core.SpanCommit][0], spans[core.SpanFetch][0]
	if got := produce.SpanContext.TraceID().String(); got != producerTrace {
		t.Fatalf("produce span in trace %s, want the producer's %s", got, producerTrace)
	}
	if produce.Parent.SpanID().String() != producerSpan || !produce.Parent.IsRemote() {
		t.Fatalf("produce span's parent %v, want the producer's span %s", produce.Parent, producerSpan)
	}
	if produce.SpanKind != trace.SpanKindServer || attr(produce, "messaging.destination.name") != "traced" || attr(produce, "messaging.batch.message_count") != "2" {
		t.Fatalf("produce span: kind %v attrs %v", produce.SpanKind, produce.Attributes)
	}
	if len(produce.Links) != 1 || produce.Links[0].SpanContext.TraceID().String() != "11111111111111111111111111111111" {
		t.Fatalf("produce span links %v, want the second record's own trace", produce.Links)
	}
	if commit.Parent.SpanID() != produce.SpanContext.SpanID() || attr(commit, "weir.offset") != "0" || attr(commit, "messaging.destination.partition.id") != "0" {
		t.Fatalf("commit span: parent %v attrs %v", commit.Parent, commit.Attributes)
	}
	// The record now carries the produce span; the other keeps its own.
	wantTP := core.FormatTraceparent(produce.SpanContext)
	if got := f.Records[0].Headers["traceparent"]; got != wantTP {
		t.Fatalf("record 0 traceparent %q, want the produce span's %q", got, wantTP)
	}
	if got := f.Records[1].Headers["traceparent"]; got != otherTP {
		t.Fatalf("record 1 traceparent %q, want its own %q", got, otherTP)
	}
	// The fetch had no traceparent: it continues the first record's trace.
	if fetch.SpanContext.TraceID().String() != producerTrace || fetch.Parent.SpanID() != produce.SpanContext.SpanID() {
		t.Fatalf("fetch span: trace %s parent %s, want a child of the produce span", fetch.SpanContext.TraceID(), fetch.Parent.SpanID())
	}
	if attr(fetch, "messaging.batch.message_count") != "2" || len(fetch.Links) != 1 {
		t.Fatalf("fetch span: attrs %v links %v", fetch.Attributes, fetch.Links)
	}

	// A record produced without any trace context starts a trace of its own
	// and carries it.
	exp.Reset()
	produceWithTraceparent(t, u, "traced", "", map[string]any{"records": []map[string]any{{"value": "fresh"}}})
	f = fetchAll(t, u, "traced", 0)
	spans = spansByName(exp)
	if len(spans[core.SpanProduce]) != 1 {
		t.Fatalf("spans: %v", names(exp))
	}
	root := spans[core.SpanProduce][0]
	if root.Parent.IsValid() {
		t.Fatalf("produce without context has parent %v", root.Parent)
	}
	if got := f.Records[2].Headers["traceparent"]; got != core.FormatTraceparent(root.SpanContext) {
		t.Fatalf("fresh record traceparent %q, want %q", got, core.FormatTraceparent(root.SpanContext))
	}
}

// TestTracingOffLeavesRecordsAlone checks the default: no spans, no header
// added, even when the client sends a traceparent.
func TestTracingOffLeavesRecordsAlone(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	if s.Broker.Telemetry().Tracing() || s.Telemetry.Tracing() {
		t.Fatal("tracing is on with no OTEL_ variable set")
	}
	createTopic(t, s.URL(), "plain", 1)
	produceWithTraceparent(t, s.URL(), "plain", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		map[string]any{"records": []map[string]any{{"value": "v"}}})
	f := fetchAll(t, s.URL(), "plain", 0)
	if len(f.Records) != 1 || len(f.Records[0].Headers) != 0 {
		t.Fatalf("records %+v, want one without headers", f.Records)
	}
}

// TestMetricsEndpoint parses GET /metrics and checks per-topic series,
// latency histograms, consumer lag, leader changes and disk use.
func TestMetricsEndpoint(t *testing.T) {
	s := startNode(t, t.TempDir(), func(c *Config) {
		c.Telemetry.LeaderInterval = 20 * time.Millisecond
		c.Telemetry.DiskInterval = 50 * time.Millisecond
	})
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "m1", 2)
	createTopic(t, u, "m2", 1)
	produce := func(topic string, n, partition int) {
		var recs []map[string]any
		for i := 0; i < n; i++ {
			recs = append(recs, map[string]any{"value": fmt.Sprintf("value-%d", i), "partition": partition})
		}
		if r := tu.Do(t, "POST", u+"/v1/topics/"+topic+"/records", map[string]any{"records": recs}); r.Status != 200 {
			t.Fatalf("produce: %d %s", r.Status, r.Body)
		}
	}
	produce("m1", 5, 0)
	produce("m1", 2, 1)
	produce("m2", 3, 0)
	fetchAll(t, u, "m1", 0)
	if r := tu.Do(t, "POST", u+"/v1/groups/billing/offsets", map[string]any{"offsets": []map[string]any{
		{"topic": "m1", "partition": 0, "offset": 1}, {"topic": "m1", "partition": 1, "offset": 2},
	}}); r.Status != 204 {
		t.Fatalf("commit: %d %s", r.Status, r.Body)
	}

	var fams map[string]*dto.MetricFamily
	scrape := func() {
		r := tu.Do(t, "GET", u+"/metrics", nil)
		if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("/metrics: %d %s", r.Status, r.Header.Get("Content-Type"))
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		var err error
		if fams, err = p.TextToMetricFamilies(bytes.NewReader(r.Body)); err != nil {
			t.Fatalf("parse /metrics: %v\n%s", err, r.Body)
		}
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f := fams[name]
		if f == nil {
			return 0, false
		}
	next:
		for _, m := range f.Metric {
			for k, v := range labels {
				found := false
				for _, lp := range m.Label {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
		return 0, false
	}
	want := func(name string, labels map[string]string, v float64) {
		t.Helper()
		got, ok := value(name, labels)
		if !ok || got != v {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, v)
		}
	}
	scrape()
	want("weir_topic_records_in_total", map[string]string{"topic": "m1"}, 7)
	want("weir_topic_records_in_total", map[string]string{"topic": "m2"}, 3)
	want("weir_topic_records_out_total", map[string]string{"topic": "m1"}, 5)
	want("weir_produce_duration_seconds", map[string]string{"topic": "m1"}, 2)
	want("weir_fetch_duration_seconds", map[string]string{"topic": "m1"}, 1)
	want("weir_raft_proposal_duration_seconds", map[string]string{"topic": "m2"}, 1)
	want("weir_consumer_lag", map[string]string{"group": "billing", "topic": "m1", "partition": "0"}, 4)
	want("weir_consumer_lag", map[string]string{"group": "billing", "topic": "m1", "partition": "1"}, 0)
	want("weir_partition_high_watermark", map[string]string{"topic": "m1", "partition": "0"}, 5)
	want("weir_ws_connections", nil, 0)
	if b, ok := value("weir_topic_bytes_in_total", map[string]string{"topic": "m1"}); !ok || b < float64(7*len("value-0")) {
		t.Errorf("weir_topic_bytes_in_total{topic=m1} = %v", b)
	}
	if fams["go_goroutines"] == nil || fams["target_info"] == nil {
		t.Errorf("runtime metrics or target_info missing")
	}
	tu.Eventually(t, 10*time.Second, "leader changes and disk use", func() bool {
		scrape()
		lc, ok1 := value("weir_raft_leader_changes_total", map[string]string{"topic": "m2", "partition": "0"})
		disk, ok2 := value("weir_disk_used_bytes", map[string]string{"node": "1"})
		return ok1 && lc >= 1 && ok2 && disk > 0
	})
}

// startOTLPReceiver serves an otlpReceiver on a port of its own until the
// test ends and returns it with its base URL (OTEL_EXPORTER_OTLP_ENDPOINT).
func startOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	recv := &otlpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: recv}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return recv, "http://" + ln.Addr().String()
}

// otlpReceiver is a minimal OTLP/HTTP collector: it decodes what it gets.
type otlpReceiver struct {
	mu      sync.Mutex
	traces  []*colltrace.ExportTraceServiceRequest
	metrics []*collmetrics.ExportMetricsServiceRequest
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		rd = zr
	}
	body, err := io.ReadAll(rd)
	if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want protobuf", 415)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch r.URL.Path {
	case "/v1/traces":
		var req colltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		o.traces = append(o.traces, &req)
		b, _ := proto.Marshal(&colltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	case "/v1/metrics":
		var req collmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		o.metrics = append(o.metrics, &req)
		b, _ := proto.Marshal(&collmetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

// spans returns "service/span name" of everything received.
func (o *otlpReceiver) spans() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, req := range o.traces {
		for _, rs := range req.ResourceSpans {
			svc := ""
			for _, a := range rs.Resource.GetAttributes() {
				if a.Key == "service.name" {
					svc = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					out = append(out, svc+"/"+sp.Name)
				}
			}
		}
	}
	return out
}

// otlpSpan is one span as the receiver decoded it, ids in hex.
type otlpSpan struct {
	Service, Name           string
	TraceID, SpanID, Parent string
}

// spanList returns every span received, in arrival order.
func (o *otlpReceiver) spanList() []otlpSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []otlpSpan
	for _, req := range o.traces {
		for _, rs := range req.ResourceSpans {
			svc := ""
			for _, a := range rs.Resource.GetAttributes() {
				if a.Key == "service.name" {
					svc = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					out = append(out, otlpSpan{Service: svc, Name: sp.Name, TraceID: hex.EncodeToString(sp.TraceId),
						SpanID: hex.EncodeToString(sp.SpanId), Parent: hex.EncodeToString(sp.ParentSpanId)})
				}
			}
		}
	}
	return out
}

func (o *otlpReceiver) metricNames() map[string]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]bool{}
	for _, req := range o.metrics {
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					out[m.Name] = true
				}
			}
		}
	}
	return out
}

// TestOTLPHTTPExport configures the node only through the standard
// variables and checks that spans and metrics reach an OTLP/HTTP receiver.
func TestOTLPHTTPExport(t *testing.T) {
	recv, endpoint := startOTLPReceiver(t)
	s := startNode(t, t.TempDir(), func(c *Config) {
		c.Telemetry.Env = telemetry.MapEnv(map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_TRACES_SAMPLER":         "always_on",
			"OTEL_SERVICE_NAME":           "weir-otlp-test",
			"OTEL_METRIC_EXPORT_INTERVAL": "100",
		})
	})
	defer stop(t, s)
	if !s.Telemetry.Tracing() {
		t.Fatal("tracing is off with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	createTopic(t, s.URL(), "exported", 1)
	produceWithTraceparent(t, s.URL(), "exported", "", map[string]any{"records": []map[string]any{{"value": "v"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Telemetry.ForceFlush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	tu.Eventually(t, 10*time.Second, "spans at the receiver", func() bool {
		got := strings.Join(recv.spans(), ",")
		return strings.Contains(got, "weir-otlp-test/"+core.SpanProduce) && strings.Contains(got, "weir-otlp-test/"+core.SpanCommit)
	})
	tu.Eventually(t, 10*time.Second, "metrics at the receiver", func() bool {
		m := recv.metricNames()
		return m["weir.topic.records.in"] && m["weir.produce.duration"]
	})
}

// TestStatsAndDashboardRoutes checks GET /v1/stats and the dashboard's
// static files, and that API 404s stay JSON.
func TestStatsAndDashboardRoutes(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "orders", 2)
	if r := tu.Do(t, "POST", u+"/v1/topics/orders/records", map[string]any{"records": []map[string]any{{"value": "a", "partition": 1}, {"value": "b", "partition": 1}}}); r.Status != 200 {
		t.Fatalf("produce: %d %s", r.Status, r.Body)
	}
	tu.Do(t, "POST", u+"/v1/groups/g/offsets", map[string]any{"offsets": []map[string]any{{"topic": "orders", "partition": 1, "offset": 0}}})

	var st struct {
		Node struct {
			ID    uint64 `json:"id"`
			Ready bool   `json:"ready"`
		} `json:"node"`
		Nodes  []struct{ ID uint64 } `json:"nodes"`
		Topics []struct {
			Name       string `json:"name"`
			RecordsIn  int64  `json:"records_in"`
			Partitions []struct {
				Partition     int    `json:"partition"`
				Leader        uint64 `json:"leader"`
				HighWatermark int64  `json:"high_watermark"`
			} `json:"partitions"`
		} `json:"topics"`
		Groups []struct {
			Group string `json:"group"`
			Lag   int64  `json:"lag"`
		} `json:"groups"`
		Pipelines []any `json:"pipelines"`
	}
	r := tu.Do(t, "GET", u+"/v1/stats", nil)
	if r.Status != 200 {
		t.Fatalf("/v1/stats: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &st)
	if st.Node.ID != 1 || !st.Node.Ready || len(st.Nodes) != 1 || len(st.Topics) != 1 || st.Pipelines == nil {
		t.Fatalf("stats: %s", r.Body)
	}
	if tp := st.Topics[0]; tp.Name != "orders" || tp.RecordsIn != 2 || len(tp.Partitions) != 2 || tp.Partitions[1].HighWatermark != 2 || tp.Partitions[1].Leader != 1 {
		t.Fatalf("stats topic: %s", r.Body)
	}
	if len(st.Groups) != 1 || st.Groups[0].Group != "g" || st.Groups[0].Lag != 2 {
		t.Fatalf("stats groups: %s", r.Body)
	}
	if r := tu.Do(t, "POST", u+"/v1/stats", nil); r.Status != 405 || r.ErrorCode() != "method_not_allowed" {
		t.Fatalf("POST /v1/stats: %d %s", r.Status, r.Body)
	}

	for _, c := range []struct{ path, ctype, contains string }{
		{"/", "text/html", "Weir dashboard"},
		{"/ui/app.js", "text/javascript", "/v1/stats"},
		{"/ui/style.css", "text/css", "--accent"},
	} {
		r := tu.Do(t, "GET", u+c.path, nil)
		if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), c.ctype) || !strings.Contains(string(r.Body), c.contains) {
			t.Errorf("GET %s: %d %s", c.path, r.Status, r.Header.Get("Content-Type"))
		}
	}
	for _, p := range []string{"/ui/nope.js", "/ui/../server.go", "/nope", "/v1/nope", "/v1/stats/x"} {
		r := tu.Do(t, "GET", u+p, nil)
		if r.Status != 404 || r.ErrorCode() != "not_found" {
			t.Errorf("GET %s: %d %s, want a JSON 404", p, r.Status, r.Body)
		}
	}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

func names(exp *tracetest.InMemoryExporter) []string {
	var out []string
	for _, s := range exp.GetSpans() {
		out = append(out, s.Name+"("+s.SpanContext.TraceID().String()[:8]+")")
	}
	return out
}

// TestTraceFollowsRecordThroughPipelineAndWebSocket follows one record from
// its producer through a Wasm pipeline to a WebSocket subscriber of the
// output topic: every span is in the producer's trace, each the child of
// the step before it, and the delivered record carries that trace.
func TestTraceFollowsRecordThroughPipelineAndWebSocket(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	s := startNode(t, t.TempDir(), withSpans(exp))
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "src", 1)
	createTopic(t, u, "dst", 1)
	uploadModule(t, u, "passthrough", "examples/passthrough")
	createPipeline(t, u, map[string]any{"name": "pt", "module": "passthrough", "inputs": []string{"src"}, "outputs": []string{"dst"}})

	c := dialWS(t, u, "/v1/ws", nil)
	c.send(map[string]any{"op": "subscribe", "id": "out", "topic": "dst", "partition": 0, "from": "earliest"})
	c.expect(0, "subscribed", "out")
	if conns, _ := s.Gateway.WSCounters(); conns != 1 {
		t.Fatalf("weir.ws.connections = %d with one client", conns)
	}

	const producerTrace, producerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	produceWithTraceparent(t, u, "src", "00-"+producerTrace+"-"+producerSpan+"-01",
		map[string]any{"records": []map[string]any{{"key": "order-1", "value": `{"amount":42}`}}})
	c.wait(30*time.Second, "the record through the pipeline", func(msgs []wsMsg) bool { return countRecords(msgs, "out") >= 1 })
	got := c.records("out")[0]

	// Spans end asynchronously (delivery ends once the frame is written).
	want := []string{core.SpanProduce, core.SpanPipelineBatch, core.SpanWasmCall, core.SpanPipelineOutput, core.SpanDeliver}
	var spans map[string][]tracetest.SpanStub
	tu.Eventually(t, 10*time.Second, "every span of the record's journey", func() bool {
		spans = spansByName(exp)
		for _, n := range want {
			if len(spans[n]) == 0 {
				return false
			}
		}
		return len(spans[core.SpanCommit]) >= 2
	})
	one := func(name string) tracetest.SpanStub {
		t.Helper()
		if len(spans[name]) != 1 {
			t.Fatalf("%d %s spans, want 1: %v", len(spans[name]), name, names(exp))
		}
		return spans[name][0]
	}
	produce, batch, wasm, output, deliver := one(core.SpanProduce), one(core.SpanPipelineBatch), one(core.SpanWasmCall), one(core.SpanPipelineOutput), one(core.SpanDeliver)
	for _, sp := range exp.GetSpans() {
		if tid := sp.SpanContext.TraceID().String(); tid != producerTrace {
			t.Errorf("span %s in trace %s, want every span in the producer's trace %s", sp.Name, tid, producerTrace)
		}
	}
	parentOf := func(child, parent tracetest.SpanStub) {
		t.Helper()
		if child.Parent.SpanID() != parent.SpanContext.SpanID() {
			t.Errorf("%s's parent is %s, want %s %s", child.Name, child.Parent.SpanID(), parent.Name, parent.SpanContext.SpanID())
		}
	}
	if produce.Parent.SpanID().String() != producerSpan {
		t.Errorf("produce's parent %s, want the producer's span", produce.Parent.SpanID())
	}
	parentOf(batch, produce) // through the input record's traceparent
	parentOf(wasm, batch)
	parentOf(output, batch)
	parentOf(deliver, batch) // through the output record's traceparent
	var commits []string
	for _, c := range spans[core.SpanCommit] {
		commits = append(commits, attr(c, "messaging.destination.name"))
		switch attr(c, "messaging.destination.name") {
		case "src":
			parentOf(c, produce)
		case "dst":
			parentOf(c, output)
		}
	}
	if strings.Join(commits, ",") != "src,dst" && strings.Join(commits, ",") != "dst,src" {
		t.Errorf("commit spans on %v, want src and dst", commits)
	}
	if attr(batch, "weir.pipeline") != "pt" || attr(wasm, "weir.module") != "passthrough" || attr(deliver, "messaging.destination.name") != "dst" {
		t.Errorf("attributes: batch %v wasm %v deliver %v", batch.Attributes, wasm.Attributes, deliver.Attributes)
	}
	if tp := got.Headers["traceparent"]; tp != core.FormatTraceparent(batch.SpanContext) {
		t.Errorf("delivered record traceparent %q, want the pipeline batch's %q", tp, core.FormatTraceparent(batch.SpanContext))
	}
	var st struct {
		Pipelines []struct {
			Name      string `json:"name"`
			State     string `json:"state"`
			Processed int64  `json:"processed"`
			WasmCalls int64  `json:"wasm_calls"`
		} `json:"pipelines"`
	}
	// The output is delivered before the batch's position commits (the
	// pipeline's tail appends, then commits): wait for the commit.
	tu.Eventually(t, 10*time.Second, "the batch's position committed", func() bool {
		tu.Do(t, "GET", u+"/v1/stats", nil).JSON(t, &st)
		return len(st.Pipelines) == 1 && st.Pipelines[0].Processed == 1 &&
			s.Telemetry.PipelineCounters()["pt"].Processed == 1
	})
	if len(st.Pipelines) != 1 || st.Pipelines[0].Name != "pt" || st.Pipelines[0].State != "running" || st.Pipelines[0].Processed != 1 || st.Pipelines[0].WasmCalls != 1 {
		t.Errorf("GET /v1/stats pipelines: %+v", st.Pipelines)
	}
	pc := s.Telemetry.PipelineCounters()["pt"]
	tc := s.Telemetry.TopicCounters()["dst"]
	if pc.Processed != 1 || pc.WasmCalls != 1 || tc.RecordsOut < 1 {
		t.Errorf("pipeline counters %+v, dst counters %+v", pc, tc)
	}
}

// TestTraceCrossesNodes produces through a node that does not lead the
// partition: its commit span's context travels with the forwarded append,
// and the leader's commit span joins the same trace as its child.
func TestTraceCrossesNodes(t *testing.T) {
	var mu sync.Mutex
	exps := map[uint64]*tracetest.InMemoryExporter{}
	c := startCluster(t, 3, func(cfg *Config) {
		mu.Lock()
		defer mu.Unlock()
		exps[cfg.NodeID] = tracetest.NewInMemoryExporter()
		cfg.Telemetry.SpanExporter = exps[cfg.NodeID]
	})
	u1 := c.nodes[1].URL()
	// One replica: a produce through another node has no local replica to
	// propose to and is forwarded over HTTP (a node with a follower
	// replica would propose through Raft instead, raftlog.FollowerWrites).
	if r := tu.Do(t, "POST", u1+"/v1/topics", map[string]any{"name": "spread", "partitions": 1, "replication_factor": 1}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var leader uint64
	tu.Eventually(t, 60*time.Second, "a settled leader", func() bool {
		leader = tu.LeaderOf(t, u1, "spread", 0)
		return leader != 0 && tu.Settled(tu.ClusterStatus(t, u1))
	})
	via := leader%3 + 1 // a node without the replica
	const producerTrace = "5b8efff798038103d269b633813fc60c"
	produceWithTraceparent(t, c.nodes[via].URL(), "spread", "00-"+producerTrace+"-eee19b7ec3c1b174-01",
		map[string]any{"records": []map[string]any{{"value": "across"}}})

	// Every commit span, on every node, is in the producer's trace; the
	// one on a node other than the producer's has a remote parent: a commit
	// span of the node that forwarded to it.
	type nodeSpan struct {
		node uint64
		span tracetest.SpanStub
	}
	var commits []nodeSpan
	tu.Eventually(t, 10*time.Second, "commit spans on two nodes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		commits = commits[:0]
		nodes := map[uint64]bool{}
		for id, exp := range exps {
			for _, sp := range spansByName(exp)[core.SpanCommit] {
				commits = append(commits, nodeSpan{id, sp})
				nodes[id] = true
			}
		}
		return len(nodes) >= 2
	})
	ids := map[trace.SpanID]uint64{}
	for _, c := range commits {
		ids[c.span.SpanContext.SpanID()] = c.node
	}
	remote := 0
	for _, c := range commits {
		if tid := c.span.SpanContext.TraceID().String(); tid != producerTrace {
			t.Fatalf("commit span on node %d in trace %s, want %s", c.node, tid, producerTrace)
		}
		if c.span.Parent.IsRemote() {
			from, ok := ids[c.span.Parent.SpanID()]
			if !ok || from == c.node {
				t.Fatalf("commit span on node %d has remote parent %s, not another node's commit span", c.node, c.span.Parent.SpanID())
			}
			remote++
		}
	}
	if remote == 0 {
		t.Fatalf("no commit span continues another node's: %d commit spans", len(commits))
	}
}
