package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// startNode starts a single node on dir (reused across restarts).
// raftAddrs keeps each data dir's Raft address: a restarted node must come
// back on the address its data was created with.
var raftAddrs sync.Map

func startNode(t testing.TB, dir string, mod ...func(*Config)) *Server {
	t.Helper()
	addr, _ := raftAddrs.LoadOrStore(dir, tu.FreeAddr(t))
	cfg := Config{NodeID: 1, DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: addr.(string)}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		s.Close(context.Background())
		t.Fatal(err)
	}
	return s
}

func stop(t testing.TB, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Logf("close: %v", err)
	}
}

type offsetsResp struct {
	Offsets []struct {
		Partition int   `json:"partition"`
		Offset    int64 `json:"offset"`
	} `json:"offsets"`
	Duplicate bool `json:"duplicate"`
}

type fetchResp struct {
	Records []struct {
		Offset    int64             `json:"offset"`
		Timestamp int64             `json:"timestamp"`
		Key       *string           `json:"key"`
		Value     string            `json:"value"`
		Headers   map[string]string `json:"headers"`
	} `json:"records"`
	NextOffset    int64 `json:"next_offset"`
	HighWatermark int64 `json:"high_watermark"`
	LogStart      int64 `json:"log_start_offset"`
}

func createTopic(t *testing.T, url, name string, parts int) {
	t.Helper()
	r := tu.Do(t, "POST", url+"/v1/topics", map[string]any{"name": name, "partitions": parts})
	if r.Status != 201 {
		t.Fatalf("create topic: %d %s", r.Status, r.Body)
	}
}

func TestProduceFetchOrderAndKeys(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "orders", 3)

	// Several concurrent producers, keyed records: offsets dense per
	// partition, every key on one partition in produce order.
	const producers, perProducer = 4, 50
	type acked struct {
		key, value string
		partition  int
		offset     int64
	}
	var mu sync.Mutex
	var all []acked
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("key-%d", p)
			for i := 0; i < perProducer; i += 5 {
				var recs []map[string]any
				for j := i; j < i+5; j++ {
					recs = append(recs, map[string]any{"key": key, "value": fmt.Sprintf("%s/%03d", key, j)})
				}
				r, err := tu.TryDo("POST", u+"/v1/topics/orders/records", map[string]any{"records": recs})
				if err != nil || r.Status != 200 {
					t.Errorf("produce: %v %v", err, r)
					return
				}
				var o offsetsResp
				r.JSON(t, &o)
				mu.Lock()
				for j, off := range o.Offsets {
					all = append(all, acked{key, recs[j]["value"].(string), off.Partition, off.Offset})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(all) != producers*perProducer {
		t.Fatalf("acked %d records, want %d", len(all), producers*perProducer)
	}
	byKeyPart := map[string]int{}
	for _, a := range all {
		want := core.KeyPartition([]byte(a.key), 3)
		if a.partition != want {
			t.Fatalf("key %s on partition %d, want %d (Kafka murmur2)", a.key, a.partition, want)
		}
		byKeyPart[a.key] = a.partition
	}
	total := 0
	for p := 0; p < 3; p++ {
		r := tu.Do(t, "GET", fmt.Sprintf("%s/v1/topics/orders/partitions/%d/records?offset=earliest&max_records=10000", u, p), nil)
		var f fetchResp
		r.JSON(t, &f)
		last := map[string]string{}
		for i, rec := range f.Records {
			if rec.Offset != int64(i) {
				t.Fatalf("partition %d: record %d has offset %d: offsets not dense", p, i, rec.Offset)
			}
			k := *rec.Key
			if rec.Value <= last[k] {
				t.Fatalf("key %s out of order: %s after %s", k, rec.Value, last[k])
			}
			last[k] = rec.Value
		}
		if f.HighWatermark != int64(len(f.Records)) || f.NextOffset != f.HighWatermark {
			t.Fatalf("partition %d: hwm %d next %d with %d records", p, f.HighWatermark, f.NextOffset, len(f.Records))
		}
		total += len(f.Records)
	}
	if total != producers*perProducer {
		t.Fatalf("fetched %d, want %d", total, producers*perProducer)
	}
}

func TestRawBodyBase64HeadersAndTimestamp(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "raw", 1)
	bin := []byte{0, 1, 2, 0xff, 0xfe, '"', '\n'}
	r := tu.Do(t, "POST", u+"/v1/topics/raw/records?key=k1", bin, "application/octet-stream")
	if r.Status != 200 {
		t.Fatalf("raw produce: %d %s", r.Status, r.Body)
	}
	r = tu.Do(t, "POST", u+"/v1/topics/raw/records", map[string]any{
		"encoding": "base64",
		"records":  []map[string]any{{"key": base64.StdEncoding.EncodeToString([]byte("k2")), "value": base64.StdEncoding.EncodeToString(bin), "headers": map[string]string{"traceparent": "00-abc", "x": "y"}, "timestamp": 1000}},
	})
	if r.Status != 200 {
		t.Fatalf("base64 produce: %d %s", r.Status, r.Body)
	}
	r = tu.Do(t, "GET", u+"/v1/topics/raw/partitions/0/records?offset=0&encoding=base64", nil)
	var f fetchResp
	r.JSON(t, &f)
	if len(f.Records) != 2 {
		t.Fatalf("got %d records: %s", len(f.Records), r.Body)
	}
	for i, rec := range f.Records {
		v, _ := base64.StdEncoding.DecodeString(rec.Value)
		if string(v) != string(bin) {
			t.Fatalf("record %d value %q, want %q", i, v, bin)
		}
	}
	if f.Records[1].Headers["traceparent"] != "00-abc" || f.Records[1].Headers["x"] != "y" {
		t.Fatalf("headers lost: %v", f.Records[1].Headers)
	}
	if f.Records[1].Timestamp != 1000 {
		t.Fatalf("producer timestamp %d, want 1000", f.Records[1].Timestamp)
	}
	// Fetch by timestamp: the first record at or after t finds offset 1
	// (ts 1000) for t ≤ 1000 only when record 0 is later; record 0 has the
	// broker's time (now), so timestamp=now-1min finds offset 0.
	r = tu.Do(t, "GET", fmt.Sprintf("%s/v1/topics/raw/partitions/0/records?timestamp=%d", u, f.Records[0].Timestamp), nil)
	var g fetchResp
	r.JSON(t, &g)
	if len(g.Records) == 0 || g.Records[0].Offset != 0 {
		t.Fatalf("fetch by timestamp: %s", r.Body)
	}
}

// A binary produce body (docs/api.md, "Binary produce bodies") lands the
// same records as JSON would: raw keys and values, headers, producer
// timestamps, explicit partitions, idempotence; a corrupt body is a 400
// and writes nothing.
func TestProduceBinaryBody(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "bin", 2)
	bin := []byte{0, 1, 2, 0xff, '"', '\n'}
	req := &core.ProduceRequest{ProducerID: "bp", Sequence: 0, Records: []core.ProduceRecord{
		{Partition: 1, Record: core.Record{Key: []byte("k"), Value: bin, Timestamp: 1000, Headers: []core.Header{{Key: "x", Value: "y"}}}},
		{Partition: 1, Record: core.Record{Value: []byte("second")}},
	}}
	body := gateway.AppendProduceBinary(nil, req)
	r := tu.Do(t, "POST", u+"/v1/topics/bin/records", body, gateway.RecordsMediaType)
	var o offsetsResp
	r.JSON(t, &o)
	if r.Status != 200 || len(o.Offsets) != 2 || o.Offsets[0].Partition != 1 || o.Offsets[1].Offset != 1 {
		t.Fatalf("binary produce: %d %s", r.Status, r.Body)
	}
	// The same batch again is a duplicate of the first.
	r = tu.Do(t, "POST", u+"/v1/topics/bin/records", body, gateway.RecordsMediaType)
	r.JSON(t, &o)
	if r.Status != 200 || !o.Duplicate {
		t.Fatalf("retried binary produce: %d %s", r.Status, r.Body)
	}
	// Corrupt: truncated by one byte.
	r = tu.Do(t, "POST", u+"/v1/topics/bin/records", body[:len(body)-1], gateway.RecordsMediaType)
	if r.Status != 400 || !strings.Contains(string(r.Body), "bad_request") {
		t.Fatalf("truncated binary produce: %d %s", r.Status, r.Body)
	}
	var f fetchResp
	tu.Do(t, "GET", u+"/v1/topics/bin/partitions/1/records?offset=0&encoding=base64", nil).JSON(t, &f)
	if len(f.Records) != 2 {
		t.Fatalf("partition 1 holds %d records, want 2", len(f.Records))
	}
	v, _ := base64.StdEncoding.DecodeString(f.Records[0].Value)
	k, _ := base64.StdEncoding.DecodeString(*f.Records[0].Key)
	if string(v) != string(bin) || string(k) != "k" || f.Records[0].Headers["x"] != "y" || f.Records[0].Timestamp != 1000 {
		t.Fatalf("record 0: %+v", f.Records[0])
	}
	if f.Records[1].Key != nil {
		t.Fatalf("record 1 has key %q, want none", *f.Records[1].Key)
	}
}

func TestBadInputsGetTheirCodes(t *testing.T) {
	s := startNode(t, t.TempDir(), func(c *Config) { c.Gateway.MaxBodyBytes = 1 << 20 })
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "t", 2)
	big := strings.Repeat("x", 2<<20)
	manyHeaders := map[string]string{}
	for i := 0; i < 100; i++ {
		manyHeaders[fmt.Sprint("h", i)] = "v"
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"bad topic name", "POST", "/v1/topics", map[string]any{"name": "bad/name"}, 400, "bad_request"},
		{"empty topic name", "POST", "/v1/topics", map[string]any{"name": ""}, 400, "bad_request"},
		{"too many partitions", "POST", "/v1/topics", map[string]any{"name": "x", "partitions": 100000}, 400, "bad_request"},
		{"negative partitions", "POST", "/v1/topics", map[string]any{"name": "x", "partitions": -1}, 400, "bad_request"},
		{"rf above nodes", "POST", "/v1/topics", map[string]any{"name": "x", "replication_factor": 3}, 400, "bad_request"},
		{"unknown field", "POST", "/v1/topics", map[string]any{"name": "x", "partitons": 2}, 400, "bad_request"},
		{"malformed json", "POST", "/v1/topics", "{not json", 400, "bad_request"},
		{"topic exists", "POST", "/v1/topics", map[string]any{"name": "t"}, 409, "topic_exists"},
		{"describe missing", "GET", "/v1/topics/nope", nil, 404, "topic_not_found"},
		{"delete missing", "DELETE", "/v1/topics/nope", nil, 404, "topic_not_found"},
		{"produce missing topic", "POST", "/v1/topics/nope/records", map[string]any{"records": []any{map[string]any{"value": "a"}}}, 404, "topic_not_found"},
		{"produce no records", "POST", "/v1/topics/t/records", map[string]any{"records": []any{}}, 400, "bad_request"},
		{"produce bad partition", "POST", "/v1/topics/t/records", map[string]any{"records": []any{map[string]any{"value": "a", "partition": 7}}}, 404, "partition_not_found"},
		{"produce bad base64", "POST", "/v1/topics/t/records", map[string]any{"encoding": "base64", "records": []any{map[string]any{"value": "!!!"}}}, 400, "bad_request"},
		{"produce bad encoding", "POST", "/v1/topics/t/records", map[string]any{"encoding": "utf16", "records": []any{map[string]any{"value": "a"}}}, 400, "bad_request"},
		{"produce key not string", "POST", "/v1/topics/t/records", map[string]any{"records": []any{map[string]any{"key": 5, "value": "a"}}}, 400, "bad_request"},
		{"produce too many headers", "POST", "/v1/topics/t/records", map[string]any{"records": []any{map[string]any{"value": "a", "headers": manyHeaders}}}, 413, "too_large"},
		{"body too large", "POST", "/v1/topics/t/records", []byte(big), 413, "too_large"},
		{"sequence without producer", "POST", "/v1/topics/t/records", map[string]any{"sequence": 1, "records": []any{map[string]any{"value": "a"}}}, 400, "bad_request"},
		{"bad acks", "POST", "/v1/topics/t/records?acks=2", map[string]any{"records": []any{map[string]any{"value": "a"}}}, 400, "bad_request"},
		{"fetch bad partition", "GET", "/v1/topics/t/partitions/9/records", nil, 404, "partition_not_found"},
		{"fetch partition not a number", "GET", "/v1/topics/t/partitions/x/records", nil, 400, "bad_request"},
		{"fetch above hwm", "GET", "/v1/topics/t/partitions/0/records?offset=50", nil, 416, "offset_out_of_range"},
		{"fetch negative offset", "GET", "/v1/topics/t/partitions/0/records?offset=-1", nil, 416, "offset_out_of_range"},
		{"fetch bad offset", "GET", "/v1/topics/t/partitions/0/records?offset=abc", nil, 400, "bad_request"},
		{"fetch bad wait", "GET", "/v1/topics/t/partitions/0/records?wait_ms=-5", nil, 400, "bad_request"},
		{"fetch offset and timestamp", "GET", "/v1/topics/t/partitions/0/records?offset=0&timestamp=5", nil, 400, "bad_request"},
		{"fetch missing topic", "GET", "/v1/topics/nope/partitions/0/records", nil, 404, "topic_not_found"},
		{"commit missing fields", "POST", "/v1/groups/g/offsets", map[string]any{"offsets": []any{map[string]any{"topic": "t"}}}, 400, "bad_request"},
		{"commit unknown topic", "POST", "/v1/groups/g/offsets", map[string]any{"offsets": []any{map[string]any{"topic": "nope", "partition": 0, "offset": 1}}}, 404, "topic_not_found"},
		{"commit bad partition", "POST", "/v1/groups/g/offsets", map[string]any{"offsets": []any{map[string]any{"topic": "t", "partition": 5, "offset": 1}}}, 404, "partition_not_found"},
		{"unknown path", "GET", "/v1/nothing", nil, 404, "not_found"},
		{"wrong method", "PUT", "/v1/topics", nil, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tu.Do(t, c.method, u+c.path, c.body)
			if r.Status != c.status || r.ErrorCode() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
		})
	}
	// An offset below the log start and above the high watermark say where
	// the log is.
	r := tu.Do(t, "GET", u+"/v1/topics/t/partitions/0/records?offset=50", nil)
	if !strings.Contains(string(r.Body), `"log_start_offset":0`) || !strings.Contains(string(r.Body), `"high_watermark":0`) {
		t.Fatalf("416 body lacks the log range: %s", r.Body)
	}
}

func TestLongPollWakesOnProduce(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "lp", 1)
	done := make(chan *tu.Response, 1)
	start := time.Now()
	go func() {
		r, _ := tu.TryDo("GET", u+"/v1/topics/lp/partitions/0/records?offset=0&wait_ms=30000", nil)
		done <- r
	}()
	// The poll must still be waiting: nothing is there.
	select {
	case r := <-done:
		t.Fatalf("long-poll returned before any record: %v", r)
	case <-time.After(300 * time.Millisecond):
	}
	tu.Do(t, "POST", u+"/v1/topics/lp/records", map[string]any{"records": []any{map[string]any{"value": "wake"}}})
	select {
	case r := <-done:
		var f fetchResp
		r.JSON(t, &f)
		if len(f.Records) != 1 || f.Records[0].Value != "wake" {
			t.Fatalf("long-poll answer: %s", r.Body)
		}
		if time.Since(start) > 25*time.Second {
			t.Fatal("long-poll was not woken by the produce")
		}
	case <-time.After(25 * time.Second):
		t.Fatal("long-poll was not woken by the produce")
	}
	// And an empty wait times out with no records.
	r := tu.Do(t, "GET", u+"/v1/topics/lp/partitions/0/records?offset=1&wait_ms=100", nil)
	var f fetchResp
	r.JSON(t, &f)
	if r.Status != 200 || len(f.Records) != 0 || f.NextOffset != 1 {
		t.Fatalf("empty long-poll: %d %s", r.Status, r.Body)
	}
}

func TestIdempotentProducerAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := startNode(t, dir)
	u := s.URL()
	createTopic(t, u, "idem", 2)
	batch := func(seq int, vals ...string) map[string]any {
		var recs []map[string]any
		for _, v := range vals {
			recs = append(recs, map[string]any{"value": v, "partition": 1})
		}
		return map[string]any{"producer_id": "p-7", "sequence": seq, "records": recs}
	}
	r := tu.Do(t, "POST", u+"/v1/topics/idem/records", batch(0, "a", "b"))
	var first offsetsResp
	r.JSON(t, &first)
	if r.Status != 200 || first.Duplicate {
		t.Fatalf("first: %d %s", r.Status, r.Body)
	}
	tu.Do(t, "POST", u+"/v1/topics/idem/records", map[string]any{"records": []any{map[string]any{"value": "other", "partition": 1}}})
	stop(t, s)

	s = startNode(t, dir)
	defer stop(t, s)
	u = s.URL()
	// The retry after a restart gets the original offsets.
	r = tu.Do(t, "POST", u+"/v1/topics/idem/records", batch(0, "a", "b"))
	var retry offsetsResp
	r.JSON(t, &retry)
	if r.Status != 200 || !retry.Duplicate || retry.Offsets[0] != first.Offsets[0] || retry.Offsets[1] != first.Offsets[1] {
		t.Fatalf("retry: %d %s, first %+v", r.Status, r.Body, first)
	}
	// A gap is an error.
	r = tu.Do(t, "POST", u+"/v1/topics/idem/records", batch(5, "c"))
	if r.Status != 409 || r.ErrorCode() != "out_of_order_sequence" {
		t.Fatalf("gap: %d %s", r.Status, r.Body)
	}
	// The next sequence goes on.
	r = tu.Do(t, "POST", u+"/v1/topics/idem/records", batch(2, "c"))
	var next offsetsResp
	r.JSON(t, &next)
	if r.Status != 200 || next.Duplicate || next.Offsets[0].Offset != 3 {
		t.Fatalf("next: %d %s", r.Status, r.Body)
	}
	// Spanning partitions is refused.
	r = tu.Do(t, "POST", u+"/v1/topics/idem/records", map[string]any{"producer_id": "p-8", "sequence": 0, "records": []any{map[string]any{"value": "x", "partition": 0}, map[string]any{"value": "y", "partition": 1}}})
	if r.Status != 400 {
		t.Fatalf("multi-partition idempotent produce: %d %s", r.Status, r.Body)
	}
	// Only one copy of a and b exists.
	r = tu.Do(t, "GET", u+"/v1/topics/idem/partitions/1/records?offset=0", nil)
	var f fetchResp
	r.JSON(t, &f)
	var vals []string
	for _, rec := range f.Records {
		vals = append(vals, rec.Value)
	}
	if strings.Join(vals, ",") != "a,b,other,c" {
		t.Fatalf("log holds %v", vals)
	}
}

func TestRetentionDeletesWholeSegments(t *testing.T) {
	s := startNode(t, t.TempDir(), func(c *Config) {
		c.Raft.SegmentBytes = 16 << 10
		c.Broker.RetentionInterval = time.Hour // the test drives retention itself
	})
	defer stop(t, s)
	u := s.URL()
	r := tu.Do(t, "POST", u+"/v1/topics", map[string]any{"name": "ret", "partitions": 1, "retention_bytes": 64 << 10})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	val := strings.Repeat("v", 1000)
	for i := 0; i < 20; i++ {
		var recs []any
		for j := 0; j < 10; j++ {
			recs = append(recs, map[string]any{"value": val})
		}
		if r := tu.Do(t, "POST", u+"/v1/topics/ret/records", map[string]any{"records": recs}); r.Status != 200 {
			t.Fatalf("produce: %d %s", r.Status, r.Body)
		}
	}
	s.Broker.EnforceRetention(context.Background(), time.Now())
	var start int64
	tu.Eventually(t, 10*time.Second, "log start to move", func() bool {
		var tr struct {
			Partitions []struct {
				LogStart int64 `json:"log_start_offset"`
				HWM      int64 `json:"high_watermark"`
			} `json:"partitions"`
		}
		tu.Do(t, "GET", u+"/v1/topics/ret", nil).JSON(t, &tr)
		start = tr.Partitions[0].LogStart
		return start > 0 && tr.Partitions[0].HWM == 200
	})
	log, _ := s.Host.Partition("ret", 0)
	var held int64
	for _, sg := range log.Segments() {
		held += sg.Bytes
		if sg.BaseOffset < start {
			t.Fatalf("segment at %d below the log start %d is still there", sg.BaseOffset, start)
		}
	}
	if held > 64<<10+16<<10 {
		t.Fatalf("%d bytes held, retention is 64 KiB (+ one segment)", held)
	}
	r = tu.Do(t, "GET", u+"/v1/topics/ret/partitions/0/records?offset=0", nil)
	if r.Status != 416 || r.ErrorCode() != "offset_out_of_range" || !strings.Contains(string(r.Body), fmt.Sprintf(`"log_start_offset":%d`, start)) {
		t.Fatalf("read below start: %d %s", r.Status, r.Body)
	}
	r = tu.Do(t, "GET", u+"/v1/topics/ret/partitions/0/records?offset=earliest", nil)
	var f fetchResp
	r.JSON(t, &f)
	if len(f.Records) == 0 || f.Records[0].Offset != start {
		t.Fatalf("earliest after retention: %s", r.Body)
	}
}

func TestGroupOffsetsAndLag(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "g", 2)
	for i := 0; i < 5; i++ {
		tu.Do(t, "POST", u+"/v1/topics/g/records", map[string]any{"records": []any{map[string]any{"value": "x", "partition": 0}}})
	}
	r := tu.Do(t, "POST", u+"/v1/groups/billing/offsets", map[string]any{"offsets": []any{map[string]any{"topic": "g", "partition": 0, "offset": 3}}})
	if r.Status != 204 {
		t.Fatalf("commit: %d %s", r.Status, r.Body)
	}
	var got struct {
		Offsets []struct {
			Topic     string `json:"topic"`
			Partition int    `json:"partition"`
			Offset    int64  `json:"offset"`
			Lag       int64  `json:"lag"`
		} `json:"offsets"`
	}
	tu.Do(t, "GET", u+"/v1/groups/billing/offsets?topic=g", nil).JSON(t, &got)
	if len(got.Offsets) != 1 || got.Offsets[0].Offset != 3 || got.Offsets[0].Lag != 2 {
		t.Fatalf("offsets: %+v", got)
	}
}

// heldProduce is a produce request whose headers the server has read
// (it answered 100 Continue: the request is in flight, its connection
// active) while its body is still with the client.
type heldProduce struct {
	conn net.Conn
	br   *bufio.Reader
	body []byte
}

func holdProduce(t *testing.T, addr, topic string, value string) *heldProduce {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"records": []any{map[string]any{"value": value}}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(c, "POST /v1/topics/%s/records HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", topic, addr, len(body))
	h := &heldProduce{conn: c, br: bufio.NewReader(c), body: body}
	r, err := http.ReadResponse(h.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode != 100 {
		t.Fatalf("Expect: 100-continue answered %d", r.StatusCode)
	}
	return h
}

// finish sends the body and returns the final answer.
func (h *heldProduce) finish() (int, offsetsResp, error) {
	var o offsetsResp
	if _, err := h.conn.Write(h.body); err != nil {
		return 0, o, err
	}
	r, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return 0, o, err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, o, err
	}
	if r.StatusCode == 200 {
		err = json.Unmarshal(b, &o)
	}
	return r.StatusCode, o, err
}

// Produces in flight when shutdown starts complete, are acknowledged and
// survive a restart. The fences make it so on any machine: every request
// is provably in flight (the server answered its 100 Continue) before
// shutdown starts, and shutdown has provably started (the listener refuses
// connections) before the bodies go out, so every produce runs during the
// shutdown and every one is checked.
func TestAcksNoneAndGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	s := startNode(t, dir)
	u := s.URL()
	createTopic(t, u, "gs", 1)
	r := tu.Do(t, "POST", u+"/v1/topics/gs/records?acks=none", map[string]any{"records": []any{map[string]any{"value": "fire-and-forget"}}})
	if r.Status != 202 {
		t.Fatalf("acks=none: %d %s", r.Status, r.Body)
	}
	tu.Eventually(t, 10*time.Second, "acks=none record to land", func() bool {
		var f fetchResp
		tu.Do(t, "GET", u+"/v1/topics/gs/partitions/0/records?offset=0", nil).JSON(t, &f)
		return len(f.Records) == 1
	})

	const n = 20
	held := make([]*heldProduce, n)
	for i := range held {
		held[i] = holdProduce(t, s.Addr(), "gs", fmt.Sprint(i))
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		stopped <- s.Close(ctx)
	}()
	tu.Eventually(t, 30*time.Second, "shutdown to stop accepting", func() bool {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-stopped:
		t.Fatalf("shutdown finished with %d requests in flight: %v", n, err)
	default:
	}
	offsets := map[int64]string{}
	for i, h := range held {
		st, o, err := h.finish()
		if err != nil || st != 200 || len(o.Offsets) != 1 {
			t.Fatalf("produce %d in flight at shutdown: %d %+v %v", i, st, o, err)
		}
		offsets[o.Offsets[0].Offset] = fmt.Sprint(i)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	s = startNode(t, dir)
	defer stop(t, s)
	var f fetchResp
	tu.Eventually(t, 30*time.Second, "the partition to serve reads after the restart", func() bool {
		r = tu.Do(t, "GET", s.URL()+"/v1/topics/gs/partitions/0/records?offset=0", nil)
		return r.Status == 200 // 503 while the partition's replica starts
	})
	r.JSON(t, &f)
	if len(f.Records) != n+1 {
		t.Fatalf("%d produces acknowledged during shutdown, %d records in the log after it (one acks=none)", n, len(f.Records))
	}
	for _, rec := range f.Records {
		if want, ok := offsets[rec.Offset]; ok && rec.Value != want {
			t.Fatalf("offset %d holds %q, acknowledged for %q", rec.Offset, rec.Value, want)
		}
	}
}
