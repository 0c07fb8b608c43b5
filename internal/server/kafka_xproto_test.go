package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/internal/telemetry"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestKafkaCrossProtocolOneTrace is issue 13's cross-protocol test, with
// real clients on one node whose spans go over OTLP/HTTP to a test
// receiver:
//
//   - a franz-go producer sends keyed records with headers, CreateTime
//     timestamps and a W3C traceparent record header; the etl Wasm pipeline
//     turns them into JSON rows on another topic; the rows are fetched over
//     HTTP and delivered to a WebSocket subscriber with the key, headers and
//     timestamp of the Kafka record; and every span the node exported for
//     them — weir.produce, weir.raft.commit, weir.pipeline.batch,
//     weir.wasm.call, weir.pipeline.output, weir.deliver, weir.fetch — is in
//     the Kafka producer's trace, each the child of the step before it;
//   - the other way round, records produced over HTTP are consumed by a
//     franz-go consumer with their key, value, headers and timestamp, the
//     traceparent naming the HTTP producer's trace.
func TestKafkaCrossProtocolOneTrace(t *testing.T) {
	recv, endpoint := startOTLPReceiver(t)
	s := startNode(t, t.TempDir(), func(c *Config) {
		c.KafkaAddr = "127.0.0.1:0"
		c.Telemetry.Env = telemetry.MapEnv(map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_TRACES_SAMPLER":         "always_on",
			"OTEL_SERVICE_NAME":           "weir-xproto",
		})
	})
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "csv-in", 1)
	createTopic(t, u, "rows-out", 1)
	uploadModule(t, u, "etl", "examples/etl")
	createPipeline(t, u, map[string]any{"name": "csv", "module": "etl", "inputs": []string{"csv-in"}, "outputs": []string{"rows-out"},
		"config": map[string]string{"columns": "id:int,name:string"}})

	ws := dialWS(t, u, "/v1/ws", nil)
	ws.send(map[string]any{"op": "subscribe", "id": "rows", "topic": "rows-out", "partition": 0, "from": "earliest"})
	ws.expect(0, "subscribed", "rows")

	// Kafka → pipeline. One ProduceSync: franz-go may send the records in
	// one batch or several; each carries the producer's traceparent.
	const producerTrace, producerSpan = "6e0c63257de34c926f9efcd03927272e", "a3ce929d0e0e4736"
	producerTP := "00-" + producerTrace + "-" + producerSpan + "-01"
	const n = 3
	ts := time.UnixMilli(1700000000000)
	pr := kafkaClient(t, s, kgo.DefaultProduceTopic("csv-in"))
	var sent []*kgo.Record
	for i := 0; i < n; i++ {
		sent = append(sent, &kgo.Record{
			Key: []byte(fmt.Sprintf("order-%d", i)), Value: []byte(fmt.Sprintf("%d,item %d", i, i)), Timestamp: ts.Add(time.Duration(i) * time.Second),
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(producerTP)}, {Key: "source", Value: []byte("kafka")}, {Key: "seq", Value: []byte(fmt.Sprint(i))}},
		})
	}
	ctx := kctx(t)
	if err := pr.ProduceSync(ctx, sent...).FirstErr(); err != nil {
		t.Fatalf("kafka produce: %v", err)
	}

	// WebSocket delivery of the pipeline's output.
	ws.wait(30*time.Second, "the rows through the pipeline", func(msgs []wsMsg) bool { return countRecords(msgs, "rows") >= n })
	delivered := ws.records("rows")
	if len(delivered) != n {
		t.Fatalf("%d records delivered over WebSocket, want %d", len(delivered), n)
	}
	// HTTP fetch of the same output.
	var f fetchResp
	tu.Do(t, "GET", u+"/v1/topics/rows-out/partitions/0/records?offset=earliest", nil).JSON(t, &f)
	if len(f.Records) != n {
		t.Fatalf("%d records fetched over HTTP, want %d: %+v", len(f.Records), n, f.Records)
	}
	for i := 0; i < n; i++ {
		wantKey, wantValue := fmt.Sprintf("order-%d", i), fmt.Sprintf(`{"id":%d,"name":"item %d"}`, i, i)
		wantTS := ts.Add(time.Duration(i) * time.Second).UnixMilli()
		h, w := f.Records[i], delivered[i]
		for _, got := range []struct {
			via     string
			key     *string
			value   string
			ts      int64
			headers map[string]string
		}{{"HTTP", h.Key, h.Value, h.Timestamp, h.Headers}, {"WebSocket", w.Key, w.Value, w.Timestamp, w.Headers}} {
			if got.key == nil || *got.key != wantKey || got.value != wantValue || got.ts != wantTS ||
				got.headers["source"] != "kafka" || got.headers["seq"] != fmt.Sprint(i) || len(got.headers) != 3 {
				t.Fatalf("output record %d over %s: key %v value %q timestamp %d headers %v; want key %q value %q timestamp %d and the Kafka headers",
					i, got.via, got.key, got.value, got.ts, got.headers, wantKey, wantValue, wantTS)
			}
			if sc, ok := core.ParseTraceparent(got.headers["traceparent"]); !ok || sc.TraceID().String() != producerTrace {
				t.Fatalf("output record %d over %s: traceparent %q, want one in the Kafka producer's trace %s", i, got.via, got.headers["traceparent"], producerTrace)
			}
		}
	}

	// One trace: every span the node exported so far is in the Kafka
	// producer's trace, and each step is the child of the one before.
	// weir.deliver ends once the frame is written, so poll (with a flush)
	// until the receiver has every kind of span.
	want := []string{core.SpanProduce, core.SpanCommit, core.SpanPipelineBatch, core.SpanWasmCall, core.SpanPipelineOutput, core.SpanDeliver, core.SpanFetch}
	var spans []otlpSpan
	byName := map[string][]otlpSpan{}
	tu.Eventually(t, 20*time.Second, "every span of the records' journey at the OTLP receiver", func() bool {
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Telemetry.ForceFlush(fctx); err != nil {
			return false
		}
		spans = recv.spanList()
		byName = map[string][]otlpSpan{}
		for _, sp := range spans {
			byName[sp.Name] = append(byName[sp.Name], sp)
		}
		for _, name := range want {
			if len(byName[name]) == 0 {
				return false
			}
		}
		return len(byName[core.SpanCommit]) >= 2 // csv-in and rows-out
	})
	ids := map[string]otlpSpan{} // span id → span
	for _, sp := range spans {
		ids[sp.SpanID] = sp
		if sp.TraceID != producerTrace || sp.Service != "weir-xproto" {
			t.Errorf("span %s/%s in trace %s, want every span in the Kafka producer's trace %s", sp.Service, sp.Name, sp.TraceID, producerTrace)
		}
	}
	parentIs := func(child otlpSpan, parents ...string) {
		t.Helper()
		p, ok := ids[child.Parent]
		for _, name := range parents {
			if ok && p.Name == name {
				return
			}
		}
		t.Errorf("%s's parent is %s (%s), want a %v span", child.Name, child.Parent, p.Name, parents)
	}
	for _, sp := range byName[core.SpanProduce] {
		if sp.Parent != producerSpan {
			t.Errorf("weir.produce's parent %s, want the Kafka producer's span %s (its traceparent record header)", sp.Parent, producerSpan)
		}
	}
	for _, sp := range byName[core.SpanCommit] {
		parentIs(sp, core.SpanProduce, core.SpanPipelineOutput)
	}
	for _, sp := range byName[core.SpanPipelineBatch] {
		parentIs(sp, core.SpanProduce) // through the input record's traceparent
	}
	for _, sp := range byName[core.SpanWasmCall] {
		parentIs(sp, core.SpanPipelineBatch)
	}
	for _, sp := range byName[core.SpanPipelineOutput] {
		parentIs(sp, core.SpanPipelineBatch)
	}
	for _, sp := range byName[core.SpanDeliver] {
		parentIs(sp, core.SpanPipelineBatch) // through the output record's traceparent
	}
	for _, sp := range byName[core.SpanFetch] {
		parentIs(sp, core.SpanPipelineBatch)
	}
	for _, r := range delivered {
		sc, _ := core.ParseTraceparent(r.Headers["traceparent"])
		if p := ids[sc.SpanID().String()]; p.Name != core.SpanPipelineBatch {
			t.Errorf("delivered record %d carries span %s (%q), want a weir.pipeline.batch span", r.Offset, sc.SpanID(), p.Name)
		}
	}
	if t.Failed() {
		t.Fatalf("spans: %s", spanSummary(spans))
	}
	t.Logf("%d spans in the Kafka producer's trace: %s", len(spans), spanSummary(spans))

	// HTTP → Kafka: key, value, headers and timestamp as produced; the
	// traceparent now names the HTTP producer's trace.
	createTopic(t, u, "from-http", 1)
	const httpTrace = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	hts := int64(1700000100000)
	var hrecs []map[string]any
	for i := 0; i < n; i++ {
		hrecs = append(hrecs, map[string]any{"key": fmt.Sprintf("user-%d", i), "value": fmt.Sprintf(`{"n":%d}`, i), "timestamp": hts + int64(i),
			"headers": map[string]string{"source": "http", "seq": fmt.Sprint(i), "traceparent": "00-" + httpTrace + "-1122334455667788-01"}})
	}
	if r := tu.Do(t, "POST", u+"/v1/topics/from-http/records", map[string]any{"records": hrecs}); r.Status != 200 {
		t.Fatalf("HTTP produce: %d %s", r.Status, r.Body)
	}
	got := consumeN(t, s, "from-http", n)
	if len(got) != n {
		t.Fatalf("consumed %d records over Kafka, want %d", len(got), n)
	}
	for i, r := range got {
		hdr := map[string]string{}
		for _, h := range r.Headers {
			hdr[h.Key] = string(h.Value)
		}
		if string(r.Key) != fmt.Sprintf("user-%d", i) || string(r.Value) != fmt.Sprintf(`{"n":%d}`, i) || r.Timestamp.UnixMilli() != hts+int64(i) ||
			r.Offset != int64(i) || len(r.Headers) != 3 || hdr["source"] != "http" || hdr["seq"] != fmt.Sprint(i) {
			t.Fatalf("HTTP record %d over Kafka: offset %d key %q value %q timestamp %d headers %v", i, r.Offset, r.Key, r.Value, r.Timestamp.UnixMilli(), hdr)
		}
		if sc, ok := core.ParseTraceparent(hdr["traceparent"]); !ok || sc.TraceID().String() != httpTrace {
			t.Fatalf("HTTP record %d over Kafka: traceparent %q, want one in the HTTP producer's trace %s", i, hdr["traceparent"], httpTrace)
		}
	}
}

// spanSummary lists spans as "name(span←parent)" grouped by trace, for
// failure messages.
func spanSummary(spans []otlpSpan) string {
	byTrace := map[string][]string{}
	for _, sp := range spans {
		byTrace[sp.TraceID] = append(byTrace[sp.TraceID], sp.Name+"("+sp.SpanID+"←"+sp.Parent+")")
	}
	var out []string
	for tid, s := range byTrace {
		out = append(out, tid+": "+strings.Join(s, " "))
	}
	sort.Strings(out)
	b, _ := json.MarshalIndent(out, "", "  ")
	return string(b)
}
